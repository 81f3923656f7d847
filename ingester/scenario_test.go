package ingester

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/internal/scenario"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// TestWALScenarios runs the scripts in testdata/wal: pushes, crashes
// (kill -9), checkpoints, flushes and restarts of one ingester, each step
// printing what it answered or what the ingester holds. Commands (package
// internal/scenario has the format; go test -run TestWALScenarios -update
// rewrites the outputs):
//
//	window <tenant> <duration>        the tenant's out_of_order_time_window
//	push <tenant> <series> <t>=<v>... one series' samples (t in seconds), in the order given
//	crash                             kill -9 and start again: the WAL and checkpoint replayed
//	restart                           a clean stop (flushing everything) and a start
//	checkpoint | flush                a checkpoint; a flush of every chunk to the store
//	retain <duration>                 the ingester's retain period (-ingester.retain-period)
//	flush-at <t>                      the periodic flush at wall-clock time t (seconds): completed chunks only
//	forget                            flush everything and forget idle series
//	query <tenant> <series>           every sample, memory and store merged, as t=v
//	query-from <tenant> <series> <t>  the samples from t on, as a query from t gets them, and whether it read the store
//	memory <tenant> <series>          what memory holds: in-order chunks, out-of-order chunks and samples, recent (stored) chunks
func TestWALScenarios(t *testing.T) {
	scenario.Run(t, "testdata/wal/*.txt", func(t *testing.T) func([]string) string {
		dir := t.TempDir()
		o := newTestOverrides()
		cfg := testConfig()
		var reads *readCountingStore
		start := func() *testIngester {
			ti := newTestIngester(t, dir, cfg, withOverrides(o))
			reads = &readCountingStore{Store: ti.store}
			ti.store = reads
			return ti
		}
		ti := start()
		t.Cleanup(func() { ti.stop(t) })
		return func(fields []string) string {
			switch fields[0] {
			case "retain":
				d, err := time.ParseDuration(fields[1])
				require.NoError(t, err)
				cfg.RetainPeriod, ti.cfg.RetainPeriod = d, d
				return "ok"
			case "flush-at":
				sec, err := strconv.ParseInt(fields[1], 10, 64)
				require.NoError(t, err)
				return fmt.Sprint(ti.flushAt(time.Unix(sec, 0), false))
			case "query-from":
				sec, err := strconv.ParseInt(fields[3], 10, 64)
				require.NoError(t, err)
				before := reads.chunksOf.Load()
				return queryFromOf(t, ti, fields[1], fields[2], sec*1000) + "\nstore read: " + fmt.Sprint(reads.chunksOf.Load() > before)
			case "window":
				d, err := time.ParseDuration(fields[2])
				require.NoError(t, err)
				o.set(fields[1], limits.Limits{OutOfOrderTimeWindow: d})
				return "ok"
			case "push":
				return answer(ti.push(t, fields[1], scenarioSeries(t, fields[2], fields[3:])))
			case "crash":
				ti.crash(t)
				ti = start()
				return "ok"
			case "restart":
				ti.stop(t)
				ti = start()
				return "ok"
			case "checkpoint":
				return answer(ti.checkpoint())
			case "flush":
				return fmt.Sprint(ti.flush(true))
			case "forget":
				cfg := ti.cfg
				ti.cfg.SeriesIdleTimeout = 0
				defer func() { ti.cfg = cfg }()
				return fmt.Sprint(ti.flush(true))
			case "query":
				var parts []string
				for _, smp := range ti.allSamples(t, fields[1], fields[2]) {
					parts = append(parts, fmt.Sprintf("%d=%g", smp.T/1000, smp.V))
				}
				return strings.Join(parts, " ")
			case "memory":
				return memoryOf(ti, fields[1], fields[2])
			}
			t.Fatalf("unknown command %q", fields[0])
			return ""
		}
	})
}

// scenarioSeries encodes samples written t=v, t in seconds.
func scenarioSeries(t *testing.T, name string, samples []string) []byte {
	buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", name, "job", "test")), len(samples))
	for _, s := range samples {
		ts, v, ok := strings.Cut(s, "=")
		require.True(t, ok, "sample %q is not t=v", s)
		sec, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err)
		val, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err)
		buf = ingesterpb.AppendSample(buf, sec*1000, val)
	}
	return buf
}

// answer is what a client is told: ok, or the status code and message.
func answer(err error) string {
	if err == nil {
		return "ok"
	}
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}

// memoryOf describes what memory holds of a series: its in-order chunks
// and out-of-order chunks as [first-last] in seconds, and its unencoded
// out-of-order samples.
func memoryOf(ti *testIngester, tenantID, name string) string {
	h := ti.head(tenantID, false)
	if h == nil {
		return "no tenant"
	}
	all := h.all()
	i := slices.IndexFunc(all, func(s *memSeries) bool { return s.lset.Get("__name__") == name })
	if i < 0 {
		return "no series"
	}
	s := all[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	spans := func(cs []*memChunk) string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, fmt.Sprintf("[%d-%d]", c.minT/1000, c.maxT/1000))
		}
		return strings.Join(parts, " ")
	}
	inOrder := s.chunks
	if s.head != nil {
		inOrder = append(slices.Clone(inOrder), s.head)
	}
	var ooo []string
	for _, smp := range s.ooo {
		ooo = append(ooo, strconv.FormatInt(smp.T/1000, 10))
	}
	out := fmt.Sprintf("in order: %s\nout-of-order chunks: %s\nout-of-order samples: %s", spans(inOrder), spans(s.oooChunks), strings.Join(ooo, " "))
	if len(s.recent) > 0 {
		out += "\nrecent: " + spans(s.recent)
	}
	return out
}

// queryFromOf is what a QueryStream of series name from start (ms) sends
// of it from start on, as t=v with t in seconds, a sample sent twice
// marked ×2.
func queryFromOf(t *testing.T, ti *testIngester, tenantID, name string, start int64) string {
	t.Helper()
	rs := &recordingStream{ctx: ctxFor(tenantID)}
	require.NoError(t, ti.QueryStream(&ingesterpb.QueryRequest{StartMs: start, EndMs: math.MaxInt64,
		Matchers: ingesterpb.FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", name)})}, rs))
	seen := map[int64]int{}
	values := map[int64]float64{}
	for _, m := range rs.msgs {
		for _, ws := range m.Series {
			for _, c := range ws.Chunks {
				smps, err := chunks.Chunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: chunkenc.Encoding(c.Encoding), Data: c.Data}.Samples()
				require.NoError(t, err)
				for _, smp := range smps {
					if smp.T >= start {
						seen[smp.T]++
						values[smp.T] = smp.V
					}
				}
			}
		}
	}
	ts := slices.Sorted(maps.Keys(seen))
	parts := make([]string, len(ts))
	for k, at := range ts {
		parts[k] = fmt.Sprintf("%d=%g", at/1000, values[at])
		if seen[at] > 1 {
			parts[k] += fmt.Sprintf("×%d", seen[at])
		}
	}
	return strings.Join(parts, " ")
}
