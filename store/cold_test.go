package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks/chunkstest"
)

// valueAt is the value every test chunk holds at t, whatever chunk it is
// in, so that chunks put under one key with other bytes merge without
// conflict. NaN, stale markers and signed zeros come round, to be read back
// bit for bit.
func valueAt(t int64) float64 {
	switch t % 11 {
	case 3:
		return math.Float64frombits(value.StaleNaN)
	case 5:
		return math.NaN()
	case 7:
		return math.Copysign(0, -1)
	}
	return float64(t)/7 + 0.1
}

// stepChunk is an XOR chunk of n samples ending at maxt, step ms apart.
func stepChunk(tb testing.TB, maxt int64, n int, step int64) Chunk {
	tb.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(tb, err)
	mint := maxt - int64(n-1)*step
	for i := range n {
		t := mint + int64(i)*step
		app.Append(0, t, valueAt(t))
	}
	return Chunk{MinTime: mint, MaxTime: maxt, Encoding: c.Encoding(), Data: c.Bytes()}
}

// expandRuns turns the runs a select hands on whole back into the chunks
// they were made from that overlap [mint, maxt]: what a store that never
// compacted reads.
func expandRuns(tb testing.TB, scs []SeriesChunks, mint, maxt int64) []SeriesChunks {
	tb.Helper()
	return chunkstest.Expand(tb, scs, mint, maxt)
}

// seriesSamples reads the union of every selected series' samples in
// [mint, maxt] by timestamp, as a querier merging the chunks would, with
// value bits. Samples outside the range depend on how chunks were cut, and
// a select promises nothing about them.
func seriesSamples(tb testing.TB, scs []SeriesChunks, mint, maxt int64) map[string]map[int64]uint64 {
	tb.Helper()
	out := map[string]map[int64]uint64{}
	for _, sc := range scs {
		m := map[int64]uint64{}
		for _, c := range sc.Chunks {
			smps, err := c.Samples()
			require.NoError(tb, err)
			for _, s := range smps {
				if s.T < mint || s.T > maxt {
					continue
				}
				if old, ok := m[s.T]; ok {
					require.Equal(tb, old, math.Float64bits(s.V), "%s at %d: two chunks disagree", sc.Labels, s.T)
				}
				m[s.T] = math.Float64bits(s.V)
			}
		}
		if len(m) > 0 {
			out[sc.Labels.String()] = m
		}
	}
	return out
}

// Compaction changes no read: a store that compacts at random moments and
// one that never does, given the same puts (new chunks, the same chunk
// again, a chunk under a stored key with other samples, chunks late into a
// compacted partition, extreme times), the same deletions and retention
// and a reopen, answer every select, series, label, last-sample and
// sample-at call the same, values compared bit for bit.
func TestCompactionChangesNoRead(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			optsA := testOptions(t)
			a, b := openTest(t, optsA), openTest(t, testOptions(t))
			var series []labels.Labels
			for k := range 40 {
				series = append(series, labels.FromStrings("__name__", "m", "pod", fmt.Sprint(k), "job", fmt.Sprint(k%3)))
			}
			var putKeys []struct {
				k    int
				maxt int64
			}
			randMaxT := func() int64 {
				switch rng.IntN(30) {
				case 0:
					return math.MaxInt64 - rng.Int64N(1000)
				case 1:
					return math.MinInt64 + 1_000_000 + rng.Int64N(1000)
				}
				return rng.Int64N(20*activeWidth) + 1_000_000
			}
			put := func() {
				var batch []SeriesChunks
				for range 1 + rng.IntN(10) {
					k := rng.IntN(len(series))
					var c Chunk
					switch {
					case len(putKeys) > 0 && rng.IntN(4) == 0:
						// Under a stored key: the same chunk, or other
						// samples ending at the same time.
						p := putKeys[rng.IntN(len(putKeys))]
						k = p.k
						n := 1 + rng.IntN(120)
						if p.maxt < -saneTime {
							n = 1
						}
						c = stepChunk(t, p.maxt, n, []int64{1000, 15000, 30000}[rng.IntN(3)])
					default:
						maxt := randMaxT()
						step := []int64{15000, 1000, activeWidth / 10}[rng.IntN(3)]
						n := 1 + rng.IntN(120)
						if maxt < -saneTime {
							n = 1
						}
						c = stepChunk(t, maxt, n, step)
						putKeys = append(putKeys, struct {
							k    int
							maxt int64
						}{k, maxt})
					}
					batch = append(batch, seriesOf(series[k], c))
				}
				require.NoError(t, a.Put("t", batch))
				require.NoError(t, b.Put("t", batch))
			}
			cutoff := int64(math.MinInt64)
			compare := func(what string) {
				t.Helper()
				for range 40 {
					x, y := rng.Int64N(22*activeWidth)-activeWidth, rng.Int64N(3*activeWidth)
					mint, maxt := x, x+y
					switch rng.IntN(8) {
					case 0:
						mint, maxt = math.MinInt64, math.MaxInt64
					case 1:
						maxt = math.MaxInt64
					}
					mint = max(mint, cutoff)
					ms := [][]*labels.Matcher{nil, {labels.MustNewMatcher(labels.MatchEqual, "job", "1")}, {labels.MustNewMatcher(labels.MatchRegexp, "pod", "1.*")}}[rng.IntN(3)]
					wantS, err := b.Select("t", mint, maxt, ms...)
					require.NoError(t, err)
					gotS, err := a.Select("t", mint, maxt, ms...)
					require.NoError(t, err)
					require.Equal(t, seriesSamples(t, wantS, mint, maxt), seriesSamples(t, gotS, mint, maxt), "%s: select [%d, %d] %v", what, mint, maxt, ms)
					wantL, err := b.Series("t", mint, maxt, nil, ms...)
					require.NoError(t, err)
					gotL, err := a.Series("t", mint, maxt, nil, ms...)
					require.NoError(t, err)
					require.Equal(t, labelStrings(wantL), labelStrings(gotL), "%s: series [%d, %d]", what, mint, maxt)
					wantV, err := b.LabelValues("t", "pod", mint, maxt, ms...)
					require.NoError(t, err)
					gotV, err := a.LabelValues("t", "pod", mint, maxt, ms...)
					require.NoError(t, err)
					require.Equal(t, wantV, gotV, "%s: label values [%d, %d]", what, mint, maxt)
					var batches []SeriesChunks
					require.NoError(t, a.SelectBatches("t", mint, maxt, 7, nil, func(sc []SeriesChunks) error { batches = append(batches, sc...); return nil }, ms...))
					require.Equal(t, seriesSamples(t, wantS, mint, maxt), seriesSamples(t, batches, mint, maxt), "%s: select batches", what)
				}
				last := func(s *Store) map[int]string {
					out := map[int]string{}
					require.NoError(t, s.LastSamples("t", series, func(k int, smp Sample) {
						out[k] = fmt.Sprintf("%d %x", smp.T, math.Float64bits(smp.V))
					}))
					return out
				}
				require.Equal(t, last(b), last(a), "%s: last samples", what)
				for range 40 {
					p := putKeys[rng.IntN(len(putKeys))]
					at := p.maxt - []int64{0, 15000, 1000, 30000}[rng.IntN(4)]
					if at < cutoff {
						continue
					}
					want, wantOK, err := b.SampleAt("t", series[p.k], at)
					require.NoError(t, err)
					got, gotOK, err := a.SampleAt("t", series[p.k], at)
					require.NoError(t, err)
					require.Equal(t, wantOK, gotOK, "%s: sample at %d", what, at)
					require.Equal(t, [2]any{want.T, math.Float64bits(want.V)}, [2]any{got.T, math.Float64bits(got.V)}, "%s: sample at %d", what, at)
				}
			}
			moved := 0
			now, keep, stones := time.UnixMilli(0), time.Duration(0), false
			for step := range 30 {
				put()
				if rng.IntN(3) == 0 {
					n, err := a.Compact(context.Background(), rng.Int64N(22*activeWidth)+1_000_000)
					require.NoError(t, err)
					moved += n
				}
				if step == 10 || step == 16 {
					// Deletions: retention (0, keep forever) deletes the
					// chunks wholly inside them from both stores.
					lo := rng.Int64N(20*activeWidth) + 1_000_000
					stone := Tombstone{
						Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "pod", fmt.Sprintf("%d.*", rng.IntN(4)))},
						MinTime:  lo, MaxTime: lo + rng.Int64N(6*activeWidth),
					}
					for _, st := range []*Store{a, b} {
						require.NoError(t, st.AddTombstone("t", stone))
					}
					stones = true
				}
				if step == 20 {
					now, keep = time.UnixMilli(8*activeWidth), 3*time.Duration(activeWidth)*time.Millisecond
					cutoff = now.UnixMilli() - 3*activeWidth
				}
				// Compaction deletes chunks wholly inside a tombstone as
				// it goes; the plain store, at retention. Both retain
				// before reading, so that they hold the same chunks.
				if stones || step == 20 {
					for _, st := range []*Store{a, b} {
						_, err := st.ApplyRetention(now, func(string) time.Duration { return keep })
						require.NoError(t, err)
					}
				}
				if step == 25 {
					require.NoError(t, a.Close())
					a = openTest(t, optsA)
				}
				compare(fmt.Sprintf("step %d", step))
			}
			n, err := a.Compact(context.Background(), math.MaxInt64)
			require.NoError(t, err)
			for _, st := range []*Store{a, b} {
				_, err := st.ApplyRetention(now, func(string) time.Duration { return keep })
				require.NoError(t, err)
			}
			compare("after compacting everything")
			require.Positive(t, moved+n, "something was compacted")
		})
	}
}

// Compacted chunks come back as they were put, bit for bit, and take
// fewer bytes in the file than the same chunks in the chunks bucket.
func TestCompactionKeepsChunksExact(t *testing.T) {
	st := openTest(t, testOptions(t))
	var batch []SeriesChunks
	for k := range 200 {
		ls := labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(k%8), "instance", fmt.Sprintf("host-%d", k/8))
		var cs []Chunk
		for maxt := int64(1_800_000); maxt < 3*activeWidth; maxt += 1_800_000 {
			cs = append(cs, stepChunk(t, maxt, 120, 15000))
		}
		batch = append(batch, seriesOf(ls, cs...))
	}
	require.NoError(t, st.Put("t", batch))
	before, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	moved, err := st.Compact(context.Background(), 3*activeWidth)
	require.NoError(t, err)
	require.Equal(t, 200*(3*4-1), moved, "every chunk of the three complete partitions")
	after, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	after = expandRuns(t, after, math.MinInt64, math.MaxInt64)
	require.Equal(t, before, after)
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte("t"))
		require.Zero(t, tb.Bucket(bucketChunks).Stats().KeyN, "no chunk left in the chunks bucket")
		return nil
	}))
	again, err := st.Compact(context.Background(), 3*activeWidth)
	require.NoError(t, err)
	require.Zero(t, again, "a compacted partition is not compacted again")
}

// A damaged block loses its own series' chunks in its partition, counted;
// every other read goes on, and so does the process.
func TestDamagedColdBlockIsSkippedAndCounted(t *testing.T) {
	opts := testOptions(t)
	st := openTest(t, opts)
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	require.NoError(t, st.Put("t", []SeriesChunks{
		seriesOf(a, stepChunk(t, 1_000_000, 10, 15000), stepChunk(t, activeWidth+1_000_000, 10, 15000)),
		seriesOf(b, stepChunk(t, 1_000_000, 10, 15000)),
	}))
	_, err := st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	// Flip a byte of partition 0's block in place, as a bad disk would.
	require.NoError(t, st.db.Update(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
		k, v := pb.Cursor().First()
		bad := slices.Clone(v)
		bad[len(bad)-3] ^= 0x40
		return pb.Put(slices.Clone(k), bad)
	}))
	got, err := st.Select("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, got, 1, "b had chunks only in the damaged block")
	require.Equal(t, a, got[0].Labels)
	require.Len(t, got[0].Chunks, 1, "a keeps its chunk of the other partition")
	require.Equal(t, int64(activeWidth+1_000_000), got[0].Chunks[0].MaxTime)
	require.Positive(t, testutil.ToFloat64(st.m.damagedBlocks))
	// A chunk put later into the damaged partition stays readable.
	require.NoError(t, st.Put("t", []SeriesChunks{seriesOf(b, stepChunk(t, 2_000_000, 10, 15000))}))
	_, err = st.Compact(context.Background(), 2*activeWidth)
	require.NoError(t, err)
	got, err = st.Select("t", 0, activeWidth-1, labels.MustNewMatcher(labels.MatchEqual, "__name__", "b"))
	require.NoError(t, err)
	require.Len(t, got, 1)
}

// FuzzDecodeColdBlock: any bytes give records or errCorrupt, never a
// panic, and what decodes re-encodes to the same records.
func FuzzDecodeColdBlock(f *testing.F) {
	f.Add(encodeColdBlock([]coldRecord{{id: 1, maxTime: 10, value: encodeChunkValue(rawChunk(5, 10, "x"))}, {id: 3, maxTime: -4, value: encodeChunkValue(rawChunk(-9, -4, ""))}}))
	f.Add([]byte{coldBlockVersion, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeColdBlock(b)
		if err != nil {
			require.ErrorIs(t, err, errCorrupt)
			return
		}
		again, err := decodeColdBlock(encodeColdBlock(recs))
		require.NoError(t, err)
		require.Equal(t, len(recs), len(again))
	})
}
