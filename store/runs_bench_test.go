package store

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/runchunk"
)

// fillLoadgen is BenchmarkCompaction's store: the load tool's series over
// 6 hours of 15 s samples, flushed a 120-sample chunk at a time.
func fillLoadgen(tb testing.TB, gen *loadgen.Generator, steps int, compact bool) *Store {
	opts := testOptions(tb)
	st := openTest(tb, opts)
	ts := func(s int) int64 { return int64(s) * 15_000 }
	for from := 0; from < steps; from += 120 {
		batch := make([]SeriesChunks, gen.Len())
		for k := range batch {
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			require.NoError(tb, err)
			for s := from; s < min(from+120, steps); s++ {
				app.Append(0, ts(s), gen.Value(k, s))
			}
			batch[k] = SeriesChunks{Labels: gen.Series()[k], Chunks: []Chunk{{MinTime: ts(from), MaxTime: ts(min(from+120, steps) - 1), Encoding: chunkenc.EncXOR, Data: c.Bytes()}}}
		}
		require.NoError(tb, st.Put("t", batch))
	}
	if compact {
		_, err := st.Compact(context.Background(), ts(steps)+activeWidth)
		require.NoError(tb, err)
	}
	return st
}

// selectDecoded selects [mint, maxt] and decodes every sample returned;
// it returns the samples decoded, those in range, and the runs.
func selectDecoded(tb testing.TB, st *Store, mint, maxt int64) (decoded, inRange, runs int) {
	got, err := st.Select("t", mint, maxt, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	require.NoError(tb, err)
	var it chunkenc.Iterator
	for _, sc := range got {
		for _, c := range sc.Chunks {
			if c.Encoding == runchunk.Encoding {
				runs++
			}
			chk, err := runchunk.FromData(c.Encoding, c.Data)
			require.NoError(tb, err)
			it = chk.Iterator(it)
			for it.Next() != chunkenc.ValNone {
				decoded++
				if t := it.AtT(); t >= mint && t <= maxt {
					inRange++
				}
			}
		}
	}
	return decoded, inRange, runs
}

// BenchmarkCompaction's compacted selects do read runs: every series of
// its store comes as runs, one a partition; and a narrow select (five
// minutes) of compacted data gets the chunks it overlaps, decoding what
// it would from the chunks bucket, not the whole 2-hour partition.
func TestCompactedReadsAreRunsWhereWhole(t *testing.T) {
	const steps = 6 * 3600 / 15
	gen := loadgen.New(42, 20)
	st := fillLoadgen(t, gen, steps, true)
	decoded, inRange, runs := selectDecoded(t, st, 0, int64(steps-1)*15_000)
	require.Equal(t, gen.Len()*steps, decoded)
	require.Equal(t, gen.Len()*steps, inRange)
	require.Equal(t, 3*gen.Len(), runs, "every series' three partitions come as runs")
	ref := fillLoadgen(t, gen, steps, false)
	mint, maxt := int64(3600_000), int64(3900_000)
	d1, r1, _ := selectDecoded(t, ref, mint, maxt)
	d2, r2, runs := selectDecoded(t, st, mint, maxt)
	require.Zero(t, runs)
	require.Equal(t, r1, r2)
	require.Equal(t, d1, d2, "five minutes of compacted data decode what they would from the chunks bucket")
}

func BenchmarkSelectFiveMinutes(b *testing.B) {
	const steps = 6 * 3600 / 15
	gen := loadgen.New(42, 20)
	for _, compact := range []bool{false, true} {
		st := fillLoadgen(b, gen, steps, compact)
		name := "stored"
		if compact {
			name = "compacted"
		}
		b.Run(name, func(b *testing.B) {
			selectDecoded(b, st, 3600_000, 3900_000)
			b.ResetTimer()
			for range b.N {
				selectDecoded(b, st, 3600_000, 3900_000)
			}
		})
	}
}
