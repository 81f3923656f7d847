package runchunk

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// counts cuts n samples into chunks of size, as the ingester cuts them.
func counts(n, size int) []int {
	var out []int
	for ; n > 0; n -= size {
		out = append(out, min(n, size))
	}
	return out
}

func TestAppendXORWritesChunkencBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range runchunktest.Cases(rng) {
		require.Equal(t, runchunktest.XOR(t, c.T, c.V), AppendXOR(nil, c.T, c.V), c.Name)
	}
	// A full chunk: the 16-bit count at its limit.
	ts := make([]int64, xorMaxSamples)
	vs := make([]float64, xorMaxSamples)
	for k := range ts {
		ts[k], vs[k] = int64(k)*1000+rng.Int64N(3), rng.Float64()
	}
	require.Equal(t, runchunktest.XOR(t, ts, vs), AppendXOR(nil, ts, vs))
}

// FuzzAppendXORIsChunkenc: for any rising times (every delta-of-delta
// bucket, with 32-bit jumps) and any value bits, AppendXOR writes the bytes
// chunkenc's appender writes.
func FuzzAppendXORIsChunkenc(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"))
	f.Add(bytes.Repeat([]byte{0xff, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3a, 0x98}, 30))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, vs := fuzzSamples(b, xorMaxSamples)
		if len(ts) == 0 {
			return
		}
		require.Equal(t, runchunktest.XOR(t, ts, vs), AppendXOR(nil, ts, vs))
	})
}

// fuzzSamples draws up to max samples from b: 13 bytes each, rising times
// with short or 32-bit steps, any value bits.
func fuzzSamples(b []byte, max int) ([]int64, []float64) {
	var ts []int64
	var vs []float64
	at := int64(-1 << 40)
	for len(b) >= 13 && len(ts) < max {
		step := int64(binary.LittleEndian.Uint32(b[1:]))
		if b[0]&1 == 0 {
			step &= 0xffff // small steps: the short delta-of-delta buckets
		}
		at += step + 1
		ts = append(ts, at)
		vs = append(vs, math.Float64frombits(binary.LittleEndian.Uint64(b[5:])))
		b = b[13:]
	}
	return ts, vs
}

// TestRunsPickTheirForm checks that each kind of series gets the form
// meant for it: a decimal run keeps stale markers as exceptions, noisy
// floats their bits.
func TestRunsPickTheirForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	forms := map[string]byte{}
	for _, c := range runchunktest.Cases(rng) {
		run := Append(nil, counts(len(c.T), 120), c.T, c.V)
		// The form byte follows the chunk counts and the times.
		rest := run
		nChunks, n := binary.Uvarint(rest)
		rest = rest[n:]
		for range nChunks {
			_, n = binary.Uvarint(rest)
			rest = rest[n:]
		}
		_, rest, err := readTimes(rest, len(c.T), new(oracle))
		require.NoError(t, err)
		forms[c.Name] = rest[0]
	}
	require.Equal(t, valuesDecimal, forms["integer counter/479"])
	require.Equal(t, valuesDecimal, forms["two decimals/479"])
	require.Equal(t, valuesDecimal, forms["decimals ending stale"])
	require.NotEqual(t, valuesDecimal, forms["noisy floats/479"])
}

// TestXORChunksAreTheChunksCut: a run gives back the XOR chunks it was
// cut from, byte for byte, and reads as a chunk with the same samples.
func TestXORChunksAreTheChunksCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range runchunktest.Cases(rng) {
		for _, size := range []int{1, 7, 120} {
			cut := counts(len(c.T), size)
			run := Append(nil, cut, c.T, c.V)
			got, err := XORChunks(run, len(c.T))
			require.NoError(t, err, c.Name)
			require.Len(t, got, len(cut))
			at := 0
			for i, n := range cut {
				require.Equal(t, XORChunk{MinTime: c.T[at], MaxTime: c.T[at+n-1], Data: runchunktest.XOR(t, c.T[at:at+n], c.V[at:at+n])}, got[i], c.Name)
				at += n
			}
			requireSamples(t, run, c.T, c.V)
			// One sample less budget than the run holds is refused.
			_, err = XORChunks(run, len(c.T)-1)
			require.ErrorIs(t, err, ErrCorrupt)
		}
	}
}

// requireSamples reads run as a chunk and requires exactly ts and vs,
// value bits included.
func requireSamples(t *testing.T, run []byte, ts []int64, vs []float64) {
	t.Helper()
	c, err := FromData(Encoding, run)
	require.NoError(t, err)
	require.Equal(t, len(ts), c.NumSamples())
	require.Equal(t, Encoding, c.Encoding())
	it := c.Iterator(nil)
	k := 0
	for it.Next() == chunkenc.ValFloat {
		gt, gv := it.At()
		require.Equal(t, ts[k], gt)
		require.Equal(t, ts[k], it.AtT())
		require.Equal(t, math.Float64bits(vs[k]), math.Float64bits(gv), "sample %d", k)
		k++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(ts), k)
	require.Equal(t, chunkenc.ValNone, it.Next(), "an iterator past its end stays there")
}

// TestIteratorSeeks follows chunkenc.Iterator's contract: Seek moves to the
// first sample at or after t, never back, and an iterator is reused.
func TestIteratorSeeks(t *testing.T) {
	ts := []int64{10, 20, 30, 40}
	run := Append(nil, []int{4}, ts, []float64{1, 2, 3, 4})
	c, err := FromData(Encoding, run)
	require.NoError(t, err)
	it := c.Iterator(nil)
	require.Equal(t, chunkenc.ValFloat, it.Seek(15))
	require.Equal(t, int64(20), it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(5), "Seek never moves back")
	require.Equal(t, int64(20), it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(40))
	require.Equal(t, int64(40), it.AtT())
	require.Equal(t, chunkenc.ValNone, it.Seek(41))
	require.Equal(t, chunkenc.ValNone, it.Next())
	// Reused for another run, from the start.
	it = c.Iterator(it)
	require.Equal(t, chunkenc.ValFloat, it.Next())
	require.Equal(t, int64(10), it.AtT())
	// Other encodings go to chunkenc.
	x, err := FromData(chunkenc.EncXOR, runchunktest.XOR(t, ts, []float64{1, 2, 3, 4}))
	require.NoError(t, err)
	require.Equal(t, chunkenc.EncXOR, x.Encoding())
	_, err = c.Appender()
	require.Error(t, err)
}

// FuzzFromData: Decode (streaming) reads exactly what the eager decoder
// did, and DecodeTimes passes exactly the bytes Decode reads;
// any bytes either fail FromData with ErrCorrupt or iterate
// without a panic, within MaxSamples, in strictly rising time, failing at
// most with ErrCorrupt; whatever reads rebuilds as XOR chunks of the same
// samples.
func FuzzFromData(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range runchunktest.Cases(rng)[:8] {
		f.Add(Append(nil, counts(len(c.T), 50), c.T, c.V))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Decode, DecodeTimes and the eager decoder runs had before reads
		// streamed them agree on every input: which fail, and on what.
		var d, times Decoded
		decodeErr := Decode(b, MaxSamples, &d)
		timesErr := DecodeTimes(b, MaxSamples, &times)
		counts, ts, vs, oracleErr := oracleDecode(b, MaxSamples)
		require.Equal(t, oracleErr == nil, decodeErr == nil, "oracle: %v; Decode: %v", oracleErr, decodeErr)
		require.Equal(t, decodeErr == nil, timesErr == nil, "Decode: %v; DecodeTimes: %v", decodeErr, timesErr)
		if decodeErr == nil {
			require.Equal(t, counts, d.Counts)
			require.Equal(t, ts, d.T)
			require.Equal(t, ts, times.T)
			require.Equal(t, bitsOf(vs), bitsOf(d.V))
		}
		c, err := FromData(Encoding, b)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.LessOrEqual(t, c.NumSamples(), MaxSamples)
		it := c.Iterator(nil)
		var got []int64
		var gotV []float64
		for it.Next() == chunkenc.ValFloat {
			tt, v := it.At()
			if len(got) > 0 {
				require.Greater(t, tt, got[len(got)-1])
			}
			got, gotV = append(got, tt), append(gotV, v)
		}
		if it.Err() != nil {
			require.ErrorIs(t, it.Err(), ErrCorrupt)
			require.Error(t, decodeErr, "the iterator fails where Decode does")
			return
		}
		require.NoError(t, decodeErr)
		require.Equal(t, ts, got)
		require.Equal(t, bitsOf(vs), bitsOf(gotV))
		require.Len(t, got, c.NumSamples())
		xs, err := XORChunks(b, MaxSamples)
		require.NoError(t, err)
		n := 0
		for _, x := range xs {
			xc, err := chunkenc.FromData(chunkenc.EncXOR, x.Data)
			require.NoError(t, err)
			n += xc.NumSamples()
		}
		require.Equal(t, len(got), n)
	})
}

func bitsOf(vs []float64) []uint64 {
	out := make([]uint64, len(vs))
	for k, v := range vs {
		out[k] = math.Float64bits(v)
	}
	return out
}
