package runchunk

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// decimalRunByHand builds a decimal run by hand, with any exceptions list
// (gaps and bits as given), so exceptions at 0 and several at one
// position can be fed.
func decimalRunByHand(counts []int, ts []int64, e byte, xs []int64, gaps []uint64, bits []uint64) []byte {
	out := binary.AppendUvarint(nil, uint64(len(counts)))
	for _, n := range counts {
		out = binary.AppendUvarint(out, uint64(n))
	}
	out = appendTimes(out, ts)
	out = append(out, valuesDecimal, e)
	out = binary.AppendVarint(out, xs[0])
	res := make([]uint64, 0, len(xs))
	for k := 1; k < len(xs); k++ {
		res = append(res, uint64(xs[k]-xs[k-1]))
	}
	out = appendPacked(out, res)
	out = binary.AppendUvarint(out, uint64(len(gaps)))
	for i, g := range gaps {
		out = binary.AppendUvarint(out, g)
		out = binary.BigEndian.AppendUint64(out, bits[i])
	}
	return out
}

func streamSeeds(rng *rand.Rand) [][]byte {
	var out [][]byte
	for _, c := range runchunktest.Cases(rng) {
		n := len(c.T)
		var cs []int
		for left := n; left > 0; {
			k := 1 + rng.IntN(min(left, 300))
			cs = append(cs, k)
			left -= k
		}
		out = append(out, Append(nil, cs, c.T, c.V))
	}
	// Decimal runs with exceptions at 0, at group edges, several at one position.
	for _, n := range []int{1, 2, 129, 300} {
		ts := make([]int64, n)
		xs := make([]int64, n)
		for k := range ts {
			ts[k] = int64(k)*1000 + 5
			xs[k] = int64(k * 3)
		}
		gaps := []uint64{0, 0}
		bits := []uint64{math.Float64bits(1.5), math.Float64bits(-7.25)}
		if n > 128 {
			gaps = append(gaps, 127, 0, 1, 0, 0)
			bits = append(bits, math.Float64bits(11), math.Float64bits(12), math.Float64bits(13), math.Float64bits(14), math.Float64bits(15))
		}
		out = append(out, decimalRunByHand([]int{n}, ts, 1, xs, gaps, bits))
	}
	return out
}

type pieceRand struct{ r *rand.Rand }

func (a pieceRand) piece(left int) int {
	switch a.r.IntN(4) {
	case 0:
		return 0
	case 1:
		return min(left, 1+a.r.IntN(3))
	case 2:
		return min(left, 126+a.r.IntN(5))
	}
	return a.r.IntN(left + 1)
}

// checkStream runs every streaming path over b and holds it to the oracle.
func checkStream(t *testing.T, b []byte, seed uint64) {
	rng := pieceRand{rand.New(rand.NewPCG(seed, 6))}
	counts, ts, vs, oerr := oracleDecode(b, MaxSamples)

	var s stream
	openErr := s.open(b, MaxSamples, nil)
	if oerr == nil {
		require.NoError(t, openErr, "oracle decodes, open fails")
	}
	if openErr == nil {
		total := s.total
		// Pass A: times and values in the same random pieces.
		gt, gv := make([]int64, total), make([]float64, total)
		var ferr error
		for k := 0; k < total; {
			m := rng.piece(total - k)
			if ferr = s.fillTimes(gt[k : k+m]); ferr != nil {
				break
			}
			if ferr = s.fillValues(gv[k : k+m]); ferr != nil {
				break
			}
			k += m
		}
		if oerr == nil {
			require.NoError(t, ferr)
			require.Equal(t, ts, gt)
			require.Equal(t, bitsOf(vs), bitsOf(gv))
			require.Zero(t, s.left())
		} else {
			require.ErrorIs(t, ferr, errTimesFall, "open passed, a fill failed otherwise (oracle: %v)", oerr)
		}
		// Pass B: values alone in different pieces (they do not depend on times).
		var s2 stream
		require.NoError(t, s2.open(b, MaxSamples, nil))
		gv2 := make([]float64, total)
		for k := 0; k < total; {
			m := rng.piece(total - k)
			require.NoError(t, s2.fillValues(gv2[k:k+m]), "values fail in pieces")
			k += m
		}
		if oerr == nil {
			require.Equal(t, bitsOf(vs), bitsOf(gv2))
		}
		_ = counts
	}

	// The iterator with random Next and Seek, against a model.
	c, err := FromData(Encoding, b)
	if err != nil {
		require.ErrorIs(t, err, ErrCorrupt)
		return
	}
	var prev chunkenc.Iterator
	if rng.r.IntN(2) == 0 {
		// A used iterator of another run.
		other, _ := FromData(Encoding, Append(nil, []int{3}, []int64{1, 2, 3}, []float64{9, 8, 7}))
		prev = other.Iterator(nil)
		for range rng.r.IntN(4) {
			prev.Next()
		}
	}
	it := c.Iterator(prev)
	pos, done := -1, false
	n := len(ts)
	var lastT int64
	for op := 0; op < 400; op++ {
		var got chunkenc.ValueType
		isNext := rng.r.IntN(2) == 0
		if isNext {
			got = it.Next()
			if oerr == nil {
				want := chunkenc.ValNone
				if !done {
					pos++
					if pos < n {
						want = chunkenc.ValFloat
					} else {
						done = true
					}
				}
				require.Equal(t, want, got, "Next op %d", op)
			}
		} else {
			var st int64
			if n > 0 {
				st = ts[0] - 3 + rng.r.Int64N(max(1, min(ts[n-1]-ts[0], 1<<40)+6))
				if rng.r.IntN(8) == 0 {
					st = ts[rng.r.IntN(n)]
				}
			} else {
				st = rng.r.Int64()
			}
			got = it.Seek(st)
			if oerr == nil {
				want := chunkenc.ValNone
				if !done {
					if pos < 0 {
						pos = 0
					}
					for pos < n && ts[pos] < st {
						pos++
					}
					if pos < n {
						want = chunkenc.ValFloat
					} else {
						done = true
					}
				}
				require.Equal(t, want, got, "Seek(%d) op %d", st, op)
			}
		}
		if got == chunkenc.ValNone {
			break
		}
		tt, v := it.At()
		require.Equal(t, tt, it.AtT())
		if oerr == nil {
			require.Equal(t, ts[pos], tt, "op %d", op)
			require.Equal(t, math.Float64bits(vs[pos]), math.Float64bits(v), "op %d", op)
		} else if op > 0 && isNext {
			require.Greater(t, tt, lastT)
		} else if op > 0 {
			require.GreaterOrEqual(t, tt, lastT)
		}
		lastT = tt
	}
	if oerr == nil {
		require.NoError(t, it.Err())
	} else if it.Err() != nil {
		require.True(t, errors.Is(it.Err(), ErrCorrupt))
	}
}

func FuzzStream(f *testing.F) {
	rng := rand.New(rand.NewPCG(66, 6))
	for _, b := range streamSeeds(rng) {
		f.Add(b, rng.Uint64())
	}
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		checkStream(t, b, seed)
	})
}

// Valid runs from the shared cases, cut at random, through random pieces
// and random Next/Seek interleavings.
func TestStreamMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 77))
	for range 30 {
		for _, b := range streamSeeds(rng) {
			for range 5 {
				checkStream(t, b, rng.Uint64())
			}
		}
	}
}
