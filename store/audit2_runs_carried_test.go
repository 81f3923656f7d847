package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// zzAudit2Check parses every block of every partition of tenant t: each
// must parse (one entry per series, IDs rising, runs within budget), and a
// series may have records in one block of a partition only.
func zzAudit2Check(t *testing.T, st *Store) (runs, carriedBad int) {
	t.Helper()
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error {
		cold := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold)
		if cold == nil {
			return nil
		}
		return cold.ForEachBucket(func(pk []byte) error {
			seen := map[uint64]bool{}
			return cold.Bucket(pk).ForEach(func(k, v []byte) error {
				d, err := parseColdBlock(v)
				require.NoError(t, err, "partition %x block %x", pk, k)
				for _, s := range d.series {
					require.False(t, seen[s.id], "series %d twice in partition %x", s.id, pk)
					seen[s.id] = true
					if s.run != nil {
						runs++
						if _, err := s.records(); err != nil {
							carriedBad++
						}
					}
				}
				return nil
			})
		})
	}))
	return runs, carriedBad
}

// TestAudit2CarriedRunsInterleaved: a store whose series k=0 has a run
// that does not rebuild, given late chunks (new keys and keys of the
// run's chunks), tombstones, retention, compactions and a reopen, answers
// every other series as a store that never compacted does, answers k=0's
// chunks put after the damage, keeps the bad run exactly once, and every
// block it writes parses.
func TestAudit2CarriedRunsInterleaved(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			optsA := testOptions(t)
			a, b := openTest(t, optsA), openTest(t, testOptions(t))
			batch := auditBatch(t, 16)
			for _, st := range []*Store{a, b} {
				require.NoError(t, st.Put("t", batch))
			}
			_, err := a.Compact(context.Background(), activeWidth)
			require.NoError(t, err)
			auditDamageOneRun(t, a, 1) // k=0
			badRun := func() []byte {
				var run []byte
				require.NoError(t, a.db.View(func(tx *bbolt.Tx) error {
					pb := tx.Bucket(bucketTenants).Bucket([]byte("t")).Bucket(bucketCold).Bucket(timeKey(0))
					return pb.ForEach(func(_, v []byte) error {
						d, err := parseColdBlock(v)
						require.NoError(t, err)
						if s := d.find(1); s != nil && s.run != nil {
							run = append([]byte(nil), s.run...)
						}
						return nil
					})
				}))
				return run
			}
			orig := badRun()
			require.NotNil(t, orig)
			// Samples of k=0 put after the damage, by time.
			lateBad := map[int64]bool{}
			now, keep := time.UnixMilli(0), time.Duration(0)
			var stones []Tombstone
			hidden := func(ts int64) bool {
				for _, st := range stones {
					if st.Matches(batch[0].Labels) && ts >= st.MinTime && ts <= st.MaxTime {
						return true
					}
				}
				return false
			}
			for step := range 12 {
				var late []SeriesChunks
				for range 1 + rng.IntN(6) {
					k := rng.IntN(len(batch))
					var c Chunk
					switch rng.IntN(3) {
					case 0: // a new key after the batch's samples
						c = stepChunk(t, 6_000_001+int64(1+rng.IntN(1000))*1000, 1+rng.IntN(5), 1000)
					case 1: // another partition
						c = stepChunk(t, activeWidth+int64(1+rng.IntN(1000))*1000, 1+rng.IntN(5), 1000)
					default: // under a key of the batch's chunks, other samples
						c = stepChunk(t, batch[k].Chunks[rng.IntN(len(batch[k].Chunks))].MaxTime, 1+rng.IntN(3), 7000)
					}
					if k == 0 {
						smps, err := c.Samples()
						require.NoError(t, err)
						for _, s := range smps {
							lateBad[s.T] = true
						}
					}
					late = append(late, seriesOf(batch[k].Labels, c))
				}
				for _, st := range []*Store{a, b} {
					require.NoError(t, st.Put("t", late))
				}
				if rng.IntN(2) == 0 {
					_, err := a.Compact(context.Background(), 3*activeWidth)
					require.NoError(t, err)
				}
				if step == 4 || step == 8 {
					lo := rng.Int64N(activeWidth)
					stone := Tombstone{MinTime: lo, MaxTime: lo + rng.Int64N(activeWidth), Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "k", fmt.Sprintf("%d|1%d", rng.IntN(4), rng.IntN(6)))}}
					if step == 8 {
						stone.Matchers = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "k", "0|3")}
					}
					for _, st := range []*Store{a, b} {
						require.NoError(t, st.AddTombstone("t", stone))
					}
					stones = append(stones, stone)
				}
				if step >= 4 {
					for _, st := range []*Store{a, b} {
						_, err := st.ApplyRetention(now, func(string) time.Duration { return keep })
						require.NoError(t, err)
					}
				}
				if step == 10 {
					require.NoError(t, a.Close())
					a = openTest(t, optsA)
				}
				runs, bad := zzAudit2Check(t, a)
				require.Equal(t, 1, bad, "step %d: the bad run is kept once (%d runs)", step, runs)
				require.Equal(t, orig, badRun(), "step %d: carried byte for byte", step)

				for _, mint := range []int64{math.MinInt64, 3_000_000} {
					want, err := b.Select("t", mint, math.MaxInt64)
					require.NoError(t, err)
					got, err := a.Select("t", mint, math.MaxInt64)
					require.NoError(t, err)
					ws, gs := seriesSamples(t, want, mint, math.MaxInt64), seriesSamples(t, got, mint, math.MaxInt64)
					name := batch[0].Labels.String()
					wb, gb := ws[name], gs[name]
					delete(ws, name)
					delete(gs, name)
					require.Equal(t, ws, gs, "step %d: other series", step)
					for ts, v := range gb {
						if (ts%15_000 == 1 && ts <= 6_000_001) || hidden(ts) {
							// A late sample at one of the run's times: the
							// plain store keeps the stored one (merge), the
							// damaged run cannot be merged with.
							continue
						}
						require.Equal(t, wb[ts], v, "step %d: k=0 at %d", step, ts)
					}
					// k=0's samples put after the damage, not deleted since
					// (present in the plain store), are read.
					for ts := range lateBad {
						if _, ok := wb[ts]; ok && ts >= mint && !hidden(ts) {
							_, ok := gb[ts]
							require.True(t, ok, "step %d: k=0's late sample at %d lost", step, ts)
						}
					}
				}
			}
		})
	}
}
