package ingester

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

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
//	forget                            flush everything and forget idle series
//	query <tenant> <series>           every sample, memory and store merged, as t=v
//	memory <tenant> <series>          what memory holds: in-order chunks, out-of-order chunks and samples
func TestWALScenarios(t *testing.T) {
	scenario.Run(t, "testdata/wal/*.txt", func(t *testing.T) func([]string) string {
		dir := t.TempDir()
		o := newTestOverrides()
		ti := newTestIngester(t, dir, testConfig(), withOverrides(o))
		t.Cleanup(func() { ti.stop(t) })
		return func(fields []string) string {
			switch fields[0] {
			case "window":
				d, err := time.ParseDuration(fields[2])
				require.NoError(t, err)
				o.set(fields[1], limits.Limits{OutOfOrderTimeWindow: d})
				return "ok"
			case "push":
				return answer(ti.push(t, fields[1], scenarioSeries(t, fields[2], fields[3:])))
			case "crash":
				ti.crash(t)
				ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
				return "ok"
			case "restart":
				ti.stop(t)
				ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
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
	return fmt.Sprintf("in order: %s\nout-of-order chunks: %s\nout-of-order samples: %s", spans(inOrder), spans(s.oooChunks), strings.Join(ooo, " "))
}
