package runchunk

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// A run's iterator answers every sequence of Next and Seek as chunkenc's
// XOR iterator over the same samples does: at the start, past the end,
// seeking back, and reused across runs and across chunk types.
func TestIteratorAnswersAsXORDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(55, 5))
	var reuse chunkenc.Iterator
	var xreuse chunkenc.Iterator
	for _, c := range runchunktest.Cases(rng) {
		n := min(len(c.T), 5000)
		ts, vs := c.T[:n], c.V[:n]
		run := Append(nil, counts(n, 120), ts, vs)
		rc, err := FromData(Encoding, run)
		require.NoError(t, err)
		xc, err := chunkenc.FromData(chunkenc.EncXOR, runchunktest.XOR(t, ts, vs))
		require.NoError(t, err)
		for range 20 {
			it, xit := rc.Iterator(reuse), xc.Iterator(xreuse)
			if rng.IntN(3) == 0 {
				// Swap iterator kinds between chunk types.
				it, xit = rc.Iterator(xreuse), xc.Iterator(reuse)
			}
			for op := range 200 {
				var a, b chunkenc.ValueType
				if rng.IntN(2) == 0 {
					a, b = it.Next(), xit.Next()
				} else {
					s := ts[0] - 5 + rng.Int64N(ts[n-1]-ts[0]+10)
					a, b = it.Seek(s), xit.Seek(s)
				}
				require.Equal(t, b, a, "op %d", op)
				if a == chunkenc.ValNone {
					break
				}
				ta, va := it.At()
				tb, vb := xit.At()
				require.Equal(t, tb, ta)
				require.Equal(t, tb, it.AtT())
				if va == va || vb == vb {
					require.Equal(t, vb, va)
				}
			}
			require.NoError(t, it.Err())
			reuse, xreuse = it, xit
		}
	}
}
