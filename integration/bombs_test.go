//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// procStatus reads a "Vm…" line of /proc/<pid>/status, in bytes: VmHWM is
// the process's peak resident memory, which a short spike cannot hide from.
func procStatus(t *testing.T, p *process, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}

// peakGrowth runs f and returns how far the process's peak resident memory
// rose above its resident memory before f: the peak is reset first
// (clear_refs 5), so earlier requests' peaks do not count.
func peakGrowth(t *testing.T, p *process, f func()) int64 {
	t.Helper()
	require.NoError(t, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0))
	base := procStatus(t, p, "VmRSS")
	f()
	return procStatus(t, p, "VmHWM") - base
}

// manySeries is a remote write 1.0 request of n one-sample series, encoded
// directly: a million prompb.TimeSeries would cost the test more memory than
// the process under test may take.
func manySeries(n int, ms int64) []byte {
	label := func(b []byte, name, value string) []byte {
		var l []byte
		l = protowire.AppendTag(l, 1, protowire.BytesType)
		l = protowire.AppendString(l, name)
		l = protowire.AppendTag(l, 2, protowire.BytesType)
		l = protowire.AppendString(l, value)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendBytes(b, l)
	}
	var raw, ts, smp []byte
	smp = protowire.AppendTag(smp, 1, protowire.Fixed64Type)
	smp = protowire.AppendFixed64(smp, 0)
	smp = protowire.AppendTag(smp, 2, protowire.VarintType)
	smp = protowire.AppendVarint(smp, uint64(ms))
	for k := 0; k < n; k++ {
		ts = label(ts[:0], "__name__", "million")
		ts = label(ts, "i", strconv.Itoa(k))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, smp)
		raw = protowire.AppendTag(raw, 1, protowire.BytesType)
		raw = protowire.AppendBytes(raw, ts)
	}
	return snappy.Encode(nil, raw)
}

// amplifyingV2 is defect 8's request: 25 label names of 1000 bytes and one
// value of 2000 (each within the default label limits), named by every one
// of n series with references of a byte or two. Small on the wire; each
// series decodes to 75 KB.
func amplifyingV2(t *testing.T, n int) []byte {
	st := writev2.NewSymbolTable()
	value := strings.Repeat("v", 2000)
	req := &writev2.Request{}
	for k := 0; k < n; k++ {
		b := labels.NewScratchBuilder(27)
		b.Add("__name__", "amplified")
		b.Add("i", strconv.Itoa(k))
		for j := 0; j < 25; j++ {
			b.Add(fmt.Sprintf("%s%02d", strings.Repeat("n", 998), j), value)
		}
		b.Sort()
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(b.Labels(), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		})
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// post sends body as tenant with a Content-Type (2.0's when v2), and the
// length unknown to the server when body is a plain io.Reader.
func postPush(t *testing.T, o *orrery, tenantID string, body io.Reader, v2 bool) (int, string, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.url("/api/v1/push"), body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	}
	req.Header.Set("X-Scope-OrgID", tenantID)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

// quietWriter writes one small request for its tenant every interval until
// stopped, and remembers every answer that was not a 204.
type quietWriter struct {
	o      *orrery
	tenant string
	stop   chan struct{}
	done   sync.WaitGroup
	mu     sync.Mutex
	sent   int
	failed []string
	worst  time.Duration
}

func startQuietWriter(t *testing.T, o *orrery, tenantID string) *quietWriter {
	w := &quietWriter{o: o, tenant: tenantID, stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for k := 0; ; k++ {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			body := writeRequest(t, seriesAt(time.Now().UnixMilli(), "__name__", "quiet_writes", "k", strconv.Itoa(k%10)))
			req, _ := http.NewRequest(http.MethodPost, o.url("/api/v1/push"), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("X-Scope-OrgID", tenantID)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			took := time.Since(start)
			w.mu.Lock()
			w.sent++
			w.worst = max(w.worst, took)
			if err != nil {
				w.failed = append(w.failed, err.Error())
			} else {
				if resp.StatusCode != http.StatusNoContent {
					b, _ := io.ReadAll(resp.Body)
					w.failed = append(w.failed, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
				resp.Body.Close()
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops the writer and requires that every write succeeded.
func (w *quietWriter) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	w.done.Wait()
	t.Logf("tenant %s: %d writes meanwhile, slowest %s", w.tenant, w.sent, w.worst)
	require.Greater(t, w.sent, 0)
	require.Empty(t, w.failed, "another tenant's writes failed meanwhile")
}

// TestRequestBombs is RELIABILITY.md's scenarios 10 and 17: requests built
// to take memory or a connection (a tiny body declaring 4 GiB, an oversized
// body, one without Content-Length, a trickled upload, a million series, a
// 2.0 request whose series all name the same long symbols) are each refused
// with a 4xx, quickly (the trickle by the read timeout), while the
// process's peak memory stays bounded and another tenant keeps writing.
func TestRequestBombs(t *testing.T) {
	o := startOrrery(t, t.TempDir(), "-server.http-read-timeout=3s")
	quiet := startQuietWriter(t, o, "quiet")

	// Warm up: the first request's allocations are not the bombs'.
	code, body := pushAs(t, o, "bombs", writeRequest(t, seriesAt(time.Now().UnixMilli(), "__name__", "warm")))
	require.Equal(t, http.StatusNoContent, code, body)
	t.Logf("resident after start: %d MiB", procStatus(t, o.process, "VmRSS")>>20)

	// The memory bombs first, while the heap holds nothing of the others.
	t.Run("amplifying 2.0 request", func(t *testing.T) {
		// 20,000 series × 75 KB: 1.5 GB decoded, from a body this small.
		req := amplifyingV2(t, 20_000)
		t.Logf("2.0 request: %d KiB on the wire", len(req)>>10)
		require.Less(t, len(req), 1<<20)
		var code int
		var body string
		var took time.Duration
		grew := peakGrowth(t, o.process, func() { code, body, took = postPush(t, o, "bombs", bytes.NewReader(req), true) })
		t.Logf("2.0 amplification refused in %s; peak resident memory +%d MiB", took, grew>>20)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
		require.Contains(t, body, "err-orrery-request-decoded-too-large")
		require.Less(t, took, 10*time.Second)
		// The decoded limit is 64 MiB; allow for the GC's headroom.
		require.Less(t, grew, int64(160<<20), "memory grew past the limit")
	})
	t.Run("a million series", func(t *testing.T) {
		req := manySeries(1_000_000, time.Now().UnixMilli())
		t.Logf("a million series: %d MiB on the wire", len(req)>>20)
		var code int
		var body string
		var took time.Duration
		grew := peakGrowth(t, o.process, func() { code, body, took = postPush(t, o, "bombs", bytes.NewReader(req), false) })
		t.Logf("a million series refused in %s; peak resident memory +%d MiB", took, grew>>20)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
		require.Contains(t, body, "err-orrery-request-decoded-too-large")
		require.Less(t, took, 15*time.Second)
		// The body (4 MiB), its decompression (36 MiB) and 64 MiB decoded,
		// whose slabs may hold up to twice what they were charged, with the
		// garbage of their growth and the GC's headroom (GOGC=50). Before the
		// limit, the whole million was decoded and stored: gigabytes.
		require.Less(t, grew, int64(320<<20), "memory grew past the limit")
	})
	t.Run("snappy bomb", func(t *testing.T) {
		// Five bytes that declare a 4 GiB decompression.
		code, body, took := postPush(t, o, "bombs", bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}), false)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
		require.Contains(t, body, "err-orrery-request-too-large")
		require.Less(t, took, 5*time.Second)
	})
	t.Run("oversized body", func(t *testing.T) {
		code, body, took := postPush(t, o, "bombs", bytes.NewReader(make([]byte, 101<<20)), false)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
		require.Contains(t, body, "err-orrery-request-too-large")
		require.Less(t, took, 10*time.Second)
	})
	t.Run("no Content-Length", func(t *testing.T) {
		// An io.Reader of unknown length goes out chunked: the server learns
		// the size only by reading, and must stop at the limit (100 MiB).
		var code int
		var msg string
		var took time.Duration
		grew := peakGrowth(t, o.process, func() {
			code, msg, took = postPush(t, o, "bombs", struct{ io.Reader }{io.LimitReader(zeros{}, 200<<20)}, false)
		})
		t.Logf("200 MiB without Content-Length refused in %s; peak resident memory +%d MiB", took, grew>>20)
		require.Equal(t, http.StatusRequestEntityTooLarge, code, msg)
		require.Contains(t, msg, "over the limit")
		require.Less(t, took, 10*time.Second)
		// The buffer grows by doubling up to the limit: the last two sizes.
		require.Less(t, grew, int64(256<<20), "memory grew past the limit")
	})
	t.Run("slow upload", func(t *testing.T) {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", o.http))
		require.NoError(t, err)
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/v1/push HTTP/1.1\r\nHost: orrery\r\nX-Scope-OrgID: bombs\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n")
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{0}); err != nil {
					return
				}
			}
		}()
		// The read timeout (3s) ends it: an answer, then the connection closes.
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
		answer, err := io.ReadAll(bufio.NewReader(conn))
		took := time.Since(start)
		t.Logf("trickled upload ended after %s: %q", took, firstLine(answer))
		require.NoError(t, err, "the server closed the connection; the client's own deadline did not end it")
		require.Less(t, took, 10*time.Second)
		if len(answer) > 0 {
			require.Regexp(t, `^HTTP/1\.1 4\d\d`, string(answer))
		}
	})

	quiet.finish(t)
	// Nothing of the refused requests was stored, and the process serves.
	for _, q := range []string{"count(million)", "count(amplified)"} {
		_, got := getAs(t, o.url("/prometheus/api/v1/query?query="+q), "bombs")
		require.Contains(t, got, `"result":[]`, q)
	}
	_, got := getAs(t, o.url("/prometheus/api/v1/query?query=count(quiet_writes)"), "quiet")
	require.Contains(t, got, `"10"]`, "the other tenant's writes are readable")
	t.Logf("in flight after the bombs: %v bytes", metricValue(t, o, "orrery_distributor_inflight_push_requests_bytes"))
	require.Eventually(t, func() bool { return metricValue(t, o, "orrery_distributor_inflight_push_requests_bytes") == 0 },
		10*time.Second, 100*time.Millisecond, "every refused request gave its memory back")
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}
