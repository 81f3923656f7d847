package runchunk

import (
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// A Seek whose load fails part way through a group (times that stop
// rising) leaves the current sample current, as load promises: At does
// not read a time of the failed group beside the old sample's value, a
// sample that never existed.
func TestFailedSeekKeepsCurrentSample(t *testing.T) {
	const n = 300
	ts, vs := make([]int64, n), make([]float64, n)
	for k := range ts {
		ts[k], vs[k] = int64(1000+10*k), float64(k)
	}
	ts[200] = ts[199] // times stop rising inside the second group
	c, err := FromData(Encoding, Append(nil, []int{n}, ts, vs))
	require.NoError(t, err)
	it := c.Iterator(nil)
	for range 5 {
		require.Equal(t, chunkenc.ValFloat, it.Next())
	}
	gt, gv := it.At()
	require.Equal(t, ts[4], gt)
	require.Equal(t, vs[4], gv)
	require.Equal(t, chunkenc.ValNone, it.Seek(ts[250]))
	require.ErrorIs(t, it.Err(), ErrCorrupt)
	gt, gv = it.At()
	require.Equal(t, ts[4], gt, "time of the current sample after a failed Seek (value is still %v)", gv)
	require.Equal(t, vs[4], gv)
}

// Exhausted by Next, a run's iterator still answers a Seek to a time at
// or before its last sample with ValFloat (its last sample), as chunkenc's
// XOR iterator does.
func TestSeekAfterExhaustionAsXOR(t *testing.T) {
	ts := []int64{10, 20, 30}
	vs := []float64{1, 2, 3}
	rc, err := FromData(Encoding, Append(nil, []int{3}, ts, vs))
	require.NoError(t, err)
	xc, err := chunkenc.FromData(chunkenc.EncXOR, runchunktest.XOR(t, ts, vs))
	require.NoError(t, err)
	it, xit := rc.Iterator(nil), xc.Iterator(nil)
	for it.Next() != chunkenc.ValNone {
	}
	for xit.Next() != chunkenc.ValNone {
	}
	require.Equal(t, xit.Seek(30), it.Seek(30))
}

// At before the first Next reads zeros (the iterator's comment; chunkenc's
// XOR iterator too after Reset), also when the iterator is reused.
func TestAtBeforeNextOnReuse(t *testing.T) {
	a, err := FromData(Encoding, Append(nil, []int{2}, []int64{5, 6}, []float64{7, 8}))
	require.NoError(t, err)
	b, err := FromData(Encoding, Append(nil, []int{2}, []int64{50, 60}, []float64{70, 80}))
	require.NoError(t, err)
	it := a.Iterator(nil)
	require.Equal(t, chunkenc.ValFloat, it.Next())
	it = b.Iterator(it)
	gt, gv := it.At()
	require.Equal(t, int64(0), gt)
	require.Equal(t, 0.0, gv)
}
