package querier

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

// replicaChunks cuts what one replica holds of truth (a random share of
// its samples missing) into chunks of random length, as replicas that
// missed different pushes cut them; truth's histograms go in histogram
// chunks.
func replicaChunks(t *testing.T, rng *rand.Rand, truth []mergeSample, missing float64) (cs []chunkenc.Chunk) {
	t.Helper()
	var c chunkenc.Chunk
	var app chunkenc.Appender
	n, limit := 0, 1+rng.IntN(40)
	flush := func() {
		if c != nil && n > 0 {
			cs = append(cs, c)
		}
		c, n = nil, 0
	}
	for _, s := range truth {
		if rng.Float64() < missing {
			continue
		}
		enc := chunkenc.EncXOR
		if s.h != nil {
			enc = chunkenc.EncHistogram
		}
		if c == nil || n >= limit || c.Encoding() != enc {
			flush()
			var err error
			c, err = chunkenc.NewEmptyChunk(enc)
			require.NoError(t, err)
			app, err = c.Appender()
			require.NoError(t, err)
			limit = 1 + rng.IntN(40)
		}
		if s.h != nil {
			_, _, next, err := app.AppendHistogram(nil, 0, s.t, s.h, true)
			require.NoError(t, err)
			app = next
		} else {
			app.Append(0, s.t, s.f)
		}
		n++
	}
	flush()
	return cs
}

type mergeSample struct {
	t int64
	f float64
	h *histogram.Histogram
}

func mergeTruth(rng *rand.Rand, n int, hist bool) []mergeSample {
	out := make([]mergeSample, 0, n)
	ts := int64(1000)
	for k := range n {
		ts += 1 + rng.Int64N(30000)
		s := mergeSample{t: ts, f: float64(k) * 1.5}
		if k%7 == 3 {
			s.f = math.Float64frombits(0x7ff0000000000002) // a stale marker
		}
		if hist && (k/20)%2 == 1 {
			s.h = tsdbutil.GenerateTestHistogram(int64(k))
		}
		out = append(out, s)
	}
	return out
}

// readOp is one step of a random read: Next, or Seek to t.
type readOp struct {
	seek bool
	t    int64
}

func (o readOp) String() string {
	if o.seek {
		return fmt.Sprintf("Seek(%d)", o.t)
	}
	return "Next()"
}

// readAll applies ops and records what each step returned, up to the
// first that found nothing: the iterator is exhausted then.
func readAll(it chunkenc.Iterator, ops []readOp) []string {
	var out []string
	for _, op := range ops {
		var typ chunkenc.ValueType
		if op.seek {
			typ = it.Seek(op.t)
		} else {
			typ = it.Next()
		}
		switch typ {
		case chunkenc.ValNone:
			return append(out, fmt.Sprintf("%v: none", op))
		case chunkenc.ValFloat:
			t, f := it.At()
			out = append(out, fmt.Sprintf("%v: %d %x", op, t, math.Float64bits(f)))
		case chunkenc.ValHistogram:
			t, h := it.AtHistogram(nil)
			h.CounterResetHint = 0 // compared apart: see TestChunkMergeHistogramHints
			out = append(out, fmt.Sprintf("%v: %d %s", op, t, h.String()))
		}
		if t := it.AtT(); len(out) > 0 && !strings.Contains(out[len(out)-1], fmt.Sprintf(": %d ", t)) {
			out = append(out, fmt.Sprintf("AtT %d", t))
		}
	}
	return out
}

// TestChunkMergeMatchesUpstreamChain reads random replica sets, each
// replica missing random samples and cut at its own places, with random
// Next and Seek calls, through chunkMerge and through upstream's chain
// iterator, which the querier used before: every step returns the same.
func TestChunkMergeMatchesUpstreamChain(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		truth := mergeTruth(rng, 1+rng.IntN(300), seed%3 == 0)
		var chunks []chunkenc.Chunk
		for range 1 + rng.IntN(3) {
			chunks = append(chunks, replicaChunks(t, rng, truth, rng.Float64()*0.3)...)
		}
		// The querier sorts distinct chunks by start; shuffle instead, so
		// the merge depends on no order.
		rng.Shuffle(len(chunks), func(i, j int) {
			chunks[i], chunks[j] = chunks[j], chunks[i]
		})
		var ops []readOp
		for range 2 * len(truth) {
			if rng.IntN(5) == 0 {
				ops = append(ops, readOp{seek: true, t: truth[rng.IntN(len(truth))].t + rng.Int64N(3) - 1})
			} else {
				ops = append(ops, readOp{})
			}
		}
		iterables := make([]chunkenc.Iterable, len(chunks))
		for k, c := range chunks {
			iterables[k] = c
		}
		want := readAll(storage.ChainSampleIteratorFromIterables(nil, iterables), ops)
		got := readAll(newChunkMerge(nil, chunks), ops)
		require.Equal(t, want, got, "seed %d", seed)
		// Reused, it starts over.
		reused := newChunkMerge(newChunkMerge(nil, chunks), chunks)
		require.Equal(t, want, readAll(reused, ops), "seed %d, reused", seed)
	}
}

// TestChunkMergeEverySampleOnce: however replicas cut and miss samples,
// reading with Next alone gives every timestamp any of them holds once, in
// order, and Seek lands on the first at or after its target.
func TestChunkMergeEverySampleOnce(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 11))
		truth := mergeTruth(rng, 1+rng.IntN(400), false)
		var chunks []chunkenc.Chunk
		held := map[int64]bool{}
		for range 1 + rng.IntN(4) {
			cs := replicaChunks(t, rng, truth, rng.Float64()*0.5)
			for _, c := range cs {
				it := c.Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					held[it.AtT()] = true
				}
			}
			chunks = append(chunks, cs...)
		}
		var want []int64
		for _, s := range truth {
			if held[s.t] {
				want = append(want, s.t)
			}
		}
		m := newChunkMerge(nil, chunks)
		var got []int64
		for m.Next() != chunkenc.ValNone {
			got = append(got, m.AtT())
		}
		require.NoError(t, m.Err())
		require.Equal(t, want, got, "seed %d", seed)
		if len(want) == 0 {
			continue
		}
		target := want[rng.IntN(len(want))] - 1
		m = newChunkMerge(m, chunks)
		require.NotEqual(t, chunkenc.ValNone, m.Seek(target))
		require.Equal(t, target+1, m.AtT(), "seed %d", seed)
	}
}

// TestChunkMergeHistogramHints: a histogram's counter reset hint is kept
// only for a sample that follows the previous one returned in the same
// chunk; otherwise it is unknown, unless the histogram is a gauge.
func TestChunkMergeHistogramHints(t *testing.T) {
	mk := func(ts []int64, hint histogram.CounterResetHint) chunkenc.Chunk {
		c := chunkenc.NewHistogramChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		for k, ts := range ts {
			h := tsdbutil.GenerateTestHistogram(int64(k))
			h.CounterResetHint = hint
			_, _, app, err = app.AppendHistogram(nil, 0, ts, h, true)
			require.NoError(t, err)
		}
		return c
	}
	// Replica a has 10, 20, 30, 40; b has 10, 30 (missed 20 and 40).
	a, b := mk([]int64{10, 20, 30, 40}, histogram.UnknownCounterReset), mk([]int64{10, 30}, histogram.UnknownCounterReset)
	m := newChunkMerge(nil, []chunkenc.Chunk{b, a})
	var hints []histogram.CounterResetHint
	for m.Next() == chunkenc.ValHistogram {
		_, h := m.AtHistogram(nil)
		hints = append(hints, h.CounterResetHint)
	}
	// The first sample of any chunk is unknown, as upstream reads it; a,
	// once chosen at 20, stays chosen where b repeats it, so its hints
	// hold. Its later samples carry NotCounterReset from the appender.
	require.Equal(t, []histogram.CounterResetHint{histogram.UnknownCounterReset, histogram.UnknownCounterReset, histogram.NotCounterReset, histogram.NotCounterReset}, hints)

	g := mk([]int64{10, 20}, histogram.GaugeType)
	m = newChunkMerge(nil, []chunkenc.Chunk{g, mk([]int64{15}, histogram.GaugeType)})
	for m.Next() == chunkenc.ValHistogram {
		_, h := m.AtHistogram(nil)
		require.Equal(t, histogram.GaugeType, h.CounterResetHint)
		_, fh := m.AtFloatHistogram(nil)
		require.Equal(t, histogram.GaugeType, fh.CounterResetHint)
	}
}

// TestChunkMergeDamagedChunk: a chunk that stops decoding ends the merge
// with its error, as upstream's chain does.
func TestChunkMergeDamagedChunk(t *testing.T) {
	good := chunkenc.NewXORChunk()
	app, err := good.Appender()
	require.NoError(t, err)
	for k := range 50 {
		app.Append(0, int64(k)*10, float64(k))
	}
	data := append([]byte(nil), good.Bytes()...)
	damaged, err := chunkenc.FromData(chunkenc.EncXOR, data[:len(data)/2])
	require.NoError(t, err)
	m := newChunkMerge(nil, []chunkenc.Chunk{good, damaged})
	for m.Next() != chunkenc.ValNone {
	}
	require.Error(t, m.Err())
}
