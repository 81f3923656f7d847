package ingester

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata scenarios")

// TestWALScenarios runs the scripts in testdata/wal: pushes, crashes
// (kill -9), checkpoints, flushes and restarts of one ingester, each step
// printing what it answered or what the ingester holds. Commands, one per
// line, each followed by its expected output after "----" up to a blank
// line (go test -run TestWALScenarios -update rewrites the outputs):
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
	files, err := filepath.Glob("testdata/wal/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			dir := t.TempDir()
			o := newTestOverrides()
			ti := newTestIngester(t, dir, testConfig(), withOverrides(o))
			var out strings.Builder
			for _, block := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
				cmd, _, _ := strings.Cut(block, "\n----")
				fields := strings.Fields(lastLine(cmd))
				var result string
				switch fields[0] {
				case "window":
					d, err := time.ParseDuration(fields[2])
					require.NoError(t, err)
					o.set(fields[1], limits.Limits{OutOfOrderTimeWindow: d})
					result = "ok"
				case "push":
					result = answer(ti.push(t, fields[1], scenarioSeries(t, fields[2], fields[3:])))
				case "crash":
					ti.crash(t)
					ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
					result = "ok"
				case "restart":
					ti.stop(t)
					ti = newTestIngester(t, dir, testConfig(), withOverrides(o))
					result = "ok"
				case "checkpoint":
					result = answer(ti.checkpoint())
				case "flush":
					result = fmt.Sprint(ti.flush(true))
				case "forget":
					cfg := ti.cfg
					ti.cfg.SeriesIdleTimeout = 0
					result = fmt.Sprint(ti.flush(true))
					ti.cfg = cfg
				case "query":
					var parts []string
					for _, smp := range ti.allSamples(t, fields[1], fields[2]) {
						parts = append(parts, fmt.Sprintf("%d=%g", smp.T/1000, smp.V))
					}
					result = strings.Join(parts, " ")
				case "memory":
					result = memoryOf(ti, fields[1], fields[2])
				default:
					t.Fatalf("%s: unknown command %q", file, fields[0])
				}
				fmt.Fprintf(&out, "%s\n----\n%s\n\n", strings.TrimSpace(cmd), result)
			}
			ti.stop(t)
			got := strings.TrimSpace(out.String()) + "\n"
			if *update {
				require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
				return
			}
			require.Equal(t, strings.TrimSpace(string(data))+"\n", got)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
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
