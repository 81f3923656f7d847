package ingester

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestDuplicateRulesHoldWhereverTheSamplesAre checks Mimir's rule for a
// series holding samples at 0..9 s, wherever those samples are: an
// identical retry (the whole batch, a part of it, or one overlapping new
// samples) is accepted silently, another value at a held timestamp is a
// duplicate-sample 400, and an older timestamp that is not held is an
// out-of-order 400; every timestamp keeps exactly one value.
func TestDuplicateRulesHoldWhereverTheSamplesAre(t *testing.T) {
	for _, c := range []struct {
		name string
		// move takes the ingester holding x and returns the one to check,
		// having moved x's samples where the case says.
		move func(t *testing.T, ti *testIngester, dir string) *testIngester
	}{
		{"in memory", func(t *testing.T, ti *testIngester, dir string) *testIngester { return ti }},
		{"flushed to the store", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.flush(true)
			return ti
		}},
		{"series forgotten after its flush", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.flush(true)
			ti.forgetIdle(ti.head("a", false), time.Now().Add(2*time.Hour), &keptChunks{})
			require.Empty(t, ti.head("a", false).all())
			return ti
		}},
		{"after a graceful restart", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.stop(t)
			return newTestIngester(t, dir, testConfig())
		}},
		{"after a crash that followed a flush and a checkpoint", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.flush(true)
			require.NoError(t, ti.checkpoint())
			ti.crash(t)
			return newTestIngester(t, dir, testConfig())
		}},
		{"after a crash, the series forgotten before the checkpoint", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.flush(true)
			ti.forgetIdle(ti.head("a", false), time.Now().Add(2*time.Hour), &keptChunks{})
			require.NoError(t, ti.checkpoint())
			ti.crash(t)
			return newTestIngester(t, dir, testConfig())
		}},
		{"after a crash with the samples only in the WAL", func(t *testing.T, ti *testIngester, dir string) *testIngester {
			ti.crash(t)
			return newTestIngester(t, dir, testConfig())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ti := newTestIngester(t, dir, testConfig())
			require.NoError(t, ti.push(t, "a", series("x", 0, 10)))
			ti = c.move(t, ti, dir)
			defer ti.stop(t)

			err := ti.push(t, "a", onePush("x", 4000, 99))
			require.Equal(t, codes.InvalidArgument, status.Code(err), "another value at a held timestamp: %v", err)
			require.Contains(t, status.Convert(err).Message(), "duplicate sample with a different value")
			err = ti.push(t, "a", onePush("x", 4500, 4.5))
			require.Equal(t, codes.InvalidArgument, status.Code(err), "older and not held: %v", err)
			require.Contains(t, status.Convert(err).Message(), "out of order sample")
			err = ti.push(t, "a", onePush("x", 9000, -9))
			require.Equal(t, codes.InvalidArgument, status.Code(err), "another value at the last timestamp: %v", err)

			require.NoError(t, ti.push(t, "a", series("x", 0, 10)), "the same batch again")
			require.NoError(t, ti.push(t, "a", series("x", 3, 4)), "a part of it again")
			require.NoError(t, ti.push(t, "a", series("x", 0, 1)), "its first sample again")

			require.NoError(t, ti.push(t, "a", series("x", 8, 4)), "a retry overlapping new samples")
			// samples() fails on any value other than the second itself.
			require.Equal(t, []int64{0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 11000}, ti.samples(t, "a")["x"])
		})
	}
}

// TestRetriesRacingFlushes retries a batch while flushes move its chunks
// from memory to the store and forget the series: a retry is judged
// against memory and then the store, and a chunk is stored before memory
// lets it go, so no retry can fall between the two and be refused.
func TestRetriesRacingFlushes(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("x", 0, 30)))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ti.flush(true)
			ti.forgetIdle(ti.head("a", false), time.Now().Add(2*time.Hour), &keptChunks{})
		}
	}()
	for k := 0; k < 200; k++ {
		require.NoError(t, ti.push(t, "a", series("x", k%25, 5)), "retry %d", k)
	}
	close(stop)
	<-done
	require.Equal(t, seconds(0, 30), ti.samples(t, "a")["x"])
}
