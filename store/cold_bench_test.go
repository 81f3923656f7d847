package store

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/runchunk"
)

// BenchmarkCompaction stores the load tool's series over 6 hours of 15 s
// samples as the ingester flushes them (120-sample chunks, series by
// series), then compacts the three partitions. It reports the bytes per
// sample of the file's pages in use (bbolt's free pages, reused by later
// writes, left out) before and after, and the time of a select of every
// series over the 6 hours from each form, from compacted data with the
// block cache and without.
//
//	go test ./store -run '^$' -bench BenchmarkCompaction -benchtime 1x
func BenchmarkCompaction(b *testing.B) {
	const steps = 6 * 3600 / 15
	gen := loadgen.New(42, 20)
	t0 := int64(0)
	ts := func(s int) int64 { return t0 + int64(s)*15_000 }
	samples := float64(gen.Len() * steps)
	fill := func(b *testing.B, cacheBytes int) *Store {
		opts := testOptions(b)
		opts.BlockCacheBytes = cacheBytes
		st := openTest(b, opts)
		// Flushes come a chunk per series at a time, as the ingester's.
		for from := 0; from < steps; from += 120 {
			batch := make([]SeriesChunks, gen.Len())
			for k := range batch {
				c := chunkenc.NewXORChunk()
				app, err := c.Appender()
				require.NoError(b, err)
				for s := from; s < min(from+120, steps); s++ {
					app.Append(0, ts(s), gen.Value(k, s))
				}
				batch[k] = SeriesChunks{Labels: gen.Series()[k], Chunks: []Chunk{{MinTime: ts(from), MaxTime: ts(min(from+120, steps) - 1), Encoding: chunkenc.EncXOR, Data: c.Bytes()}}}
			}
			require.NoError(b, st.Put("t", batch))
		}
		return st
	}
	// report gives the bytes the data uses in pages (B/sample) and the
	// pages that hold it, slack included (B/sample-pages), which is what
	// orrery-bench store-size counts.
	report := func(b *testing.B, st *Store) {
		var used, pages int
		require.NoError(b, st.db.View(func(tx *bbolt.Tx) error {
			return tx.ForEach(func(_ []byte, bk *bbolt.Bucket) error {
				s := bk.Stats()
				used += s.BranchInuse + s.LeafInuse
				pages += s.BranchAlloc + s.LeafAlloc
				return nil
			})
		}))
		b.ReportMetric(float64(used)/samples, "B/sample")
		b.ReportMetric(float64(pages)/samples, "B/sample-pages")
		// Where the pages go, by the tenant's buckets.
		require.NoError(b, st.db.View(func(tx *bbolt.Tx) error {
			tb := tx.Bucket(bucketTenants).Bucket([]byte("t"))
			return tb.ForEachBucket(func(name []byte) error {
				s := tb.Bucket(name).Stats()
				b.ReportMetric(float64(s.BranchAlloc+s.LeafAlloc)/samples, "B/sample-"+string(name))
				return nil
			})
		}))
	}
	sel := func(b *testing.B, st *Store) {
		got, err := st.Select("t", ts(0), ts(steps-1), labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		require.NoError(b, err)
		require.Len(b, got, gen.Len())
		// A query reads the samples too: the reader decodes the chunks
		// bucket's chunks, and the runs compacted data hands on whole.
		n := 0
		var it chunkenc.Iterator
		for _, sc := range got {
			for _, c := range sc.Chunks {
				chk, err := runchunk.FromData(c.Encoding, c.Data)
				require.NoError(b, err)
				it = chk.Iterator(it)
				for it.Next() != chunkenc.ValNone {
					n++
				}
			}
		}
		require.Equal(b, gen.Len()*steps, n)
	}
	b.Run("stored", func(b *testing.B) {
		st := fill(b, DefaultOptions().BlockCacheBytes)
		b.ResetTimer()
		for range b.N {
			sel(b, st)
		}
		report(b, st)
	})
	// With the block cache (warmed by a select before the timed ones), and without:
	// every select decompresses every block.
	for _, c := range []struct {
		name  string
		bytes int
	}{{"compacted", DefaultOptions().BlockCacheBytes}, {"compacted-nocache", 0}} {
		b.Run(c.name, func(b *testing.B) {
			st := fill(b, c.bytes)
			start := time.Now()
			_, err := st.Compact(context.Background(), ts(steps)+activeWidth)
			require.NoError(b, err)
			took := time.Since(start).Seconds()
			if c.bytes > 0 {
				sel(b, st) // warm: the timed selects all find the cache filled
			}
			b.ResetTimer()
			for range b.N {
				sel(b, st)
			}
			// Reported after the loop: ResetTimer drops reported metrics.
			b.ReportMetric(took, "compact-s")
			report(b, st)
		})
	}
}
