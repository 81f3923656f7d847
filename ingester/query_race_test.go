package ingester

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// While flushes move every chunk to the store (and forget the emptied
// series, so pushes re-create them) as fast as they can, every streamed
// answer still holds every sample acknowledged before the query began, in
// each series, with every series exactly once and the stream sorted by
// labels. Each round also creates a series, so some are only in memory
// when a query names them and stored by the time it reads them. Run with
// -race. A query of the newest samples only skips the store for series
// whose stored samples end before it (streamBatch): a flush racing that
// decision must not hide a sample either.
func TestQueryStreamCompleteUnderConcurrentFlush(t *testing.T) {
	t.Run("all", func(t *testing.T) { testQueryStreamUnderFlush(t, false) })
	t.Run("newest", func(t *testing.T) { testQueryStreamUnderFlush(t, true) })
}

func testQueryStreamUnderFlush(t *testing.T, newest bool) {
	cfg := testConfig()
	cfg.SeriesIdleTimeout = time.Nanosecond
	ti := newTestIngester(t, t.TempDir(), cfg)
	defer ti.stop(t)
	const nSeries = 30
	names := make([]string, nSeries)
	for k := range names {
		names[k] = fmt.Sprintf("m%02d", k)
	}

	var acked atomic.Int64 // samples 0..acked-1 of every series are acknowledged
	var flushes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			req := make([][]byte, 0, nSeries)
			for _, n := range names {
				req = append(req, onePush(n, int64(k)*1000, float64(k)))
			}
			req = append(req, onePush(fmt.Sprintf("z%06d", k), int64(k)*1000, float64(k)))
			if err := ti.push(t, "a", req...); err != nil {
				t.Errorf("push %d: %v", k, err)
				return
			}
			acked.Store(int64(k + 1))
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ti.flush(true)
			flushes.Add(1)
		}
	}()

	deadline := time.Now().Add(3 * time.Second)
	queries := 0
	for ; time.Now().Before(deadline) || queries < 20; queries++ {
		want := acked.Load()
		from := int64(0)
		if newest {
			from = max(0, want-3)
		}
		// Yielding between messages lets flushes land mid-stream.
		rs := queryFrom(t, ti, from*1000, func(int) { runtime.Gosched() })
		var got []labels.Labels
		for _, m := range rs.msgs {
			for _, ws := range m.Series {
				var b labels.ScratchBuilder
				ls := ingesterpb.ToLabels(&b, ws.Labels)
				got = append(got, ls)
				ts := timestamps(t, ws)
				slices.Sort(ts)
				ts = slices.Compact(ts)
				if name := ls.Get("__name__"); name[0] == 'z' {
					var k int64
					_, err := fmt.Sscanf(name, "z%d", &k)
					require.NoError(t, err)
					if k >= from && k < want {
						require.Equal(t, []int64{k * 1000}, ts, "query %d: %s", queries, ls)
					}
					continue
				}
				for k := from; k < want; k++ {
					if _, ok := slices.BinarySearch(ts, k*1000); !ok {
						require.Failf(t, "sample missed", "query %d: %s lacks acknowledged sample %d of 0..%d", queries, ls, k*1000, want-1)
					}
				}
			}
		}
		if want == 0 {
			continue
		}
		for k := 1; k < len(got); k++ {
			require.Negative(t, labels.Compare(got[k-1], got[k]), "query %d: stream not strictly sorted at %d: %s then %s", queries, k, got[k-1], got[k])
		}
		require.GreaterOrEqual(t, len(got), nSeries+int(want-from), "query %d", queries)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d queries, %d flushes, %d samples per series", queries, flushes.Load(), acked.Load())
	require.Greater(t, flushes.Load(), int64(queries), "flushes ran during the queries")
}
