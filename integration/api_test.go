//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

func rawGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestAPIMatchesPrometheus3 compares status codes and bodies, byte for
// byte, of errors and of the metadata endpoints.
func TestAPIMatchesPrometheus3(t *testing.T) {
	prom := startPrometheus3(t)
	o := startOrrery(t, t.TempDir())
	gen := loadgen.New(genSeed, 2)
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	start := writeGenerated(t, gen, 40, end, prom+"/api/v1/write", o.url("/api/v1/push"))
	s, e := strconv.FormatInt(start.Unix(), 10), strconv.FormatInt(end.Unix(), 10)

	for _, path := range []string{
		"/api/v1/query?query=sum(",
		"/api/v1/query?query=rate(up)",
		"/api/v1/query?query=nosuchfunction(up)",
		"/api/v1/query?query=up&time=notatime",
		"/api/v1/query_range?query=up&start=" + s + "&end=" + e + "&step=0",
		"/api/v1/query_range?query=up&start=" + e + "&end=" + s + "&step=15",
		"/api/v1/query_range?query=up&start=0&end=" + e + "&step=1",
		"/api/v1/labels",
		"/api/v1/labels?start=" + s + "&end=" + e,
		"/api/v1/labels?match[]=up",
		"/api/v1/label/__name__/values",
		"/api/v1/label/job/values?match[]=node_load1",
		"/api/v1/label/code/values?limit=2",
		"/api/v1/series?match[]=up",
		"/api/v1/series?match[]=node_load1&match[]=up%7Bjob%3D%22api%22%7D&start=" + s + "&end=" + e,
		"/api/v1/series",
		"/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)",
		"/api/v1/parse_query?query=sum(rate(x%5B5m%5D))by(job)",
		"/api/v1/query_exemplars?query=up&start=" + s + "&end=" + e,
		"/api/v1/query_exemplars?query=up(",
		"/api/v1/query?query=" + url.QueryEscape(`up{job="node"}`) + "&time=" + e,
	} {
		wantCode, want := rawGet(t, prom+path)
		gotCode, got := rawGet(t, o.url("/prometheus"+path))
		require.Equal(t, wantCode, gotCode, path)
		if strings.HasPrefix(path, "/api/v1/series?") {
			// Prometheus lists head series in creation order, blocks in label
			// order; Orrery always in label order. Same set, same bytes each.
			want, got = sortedSeries(t, want), sortedSeries(t, got)
		}
		require.Equal(t, want, got, path)
	}
	code, body := rawGet(t, o.url("/prometheus/api/v1/status/buildinfo"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"goVersion"`)
	code, body = rawGet(t, o.url("/prometheus/api/v1/status/config"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `replication_factor: 1`)
	code, body = rawGet(t, o.url("/prometheus/api/v1/status/flags"))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"ingester.max-chunk-samples":"120"`)
}

func sortedSeries(t *testing.T, body string) string {
	t.Helper()
	var resp struct {
		Status string            `json:"status"`
		Data   []json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	out := make([]string, len(resp.Data))
	for k, d := range resp.Data {
		out[k] = string(d)
	}
	slices.Sort(out)
	return resp.Status + strings.Join(out, "\n")
}

// TestBadInputKeepsServing sends every kind of bad remote-write input to
// the real process: each gets a 4xx naming the problem, the valid series of
// a partly bad request are stored, and the process keeps serving.
func TestBadInputKeepsServing(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	now := time.Now().UnixMilli()
	series := func(ts int64, kv ...string) prompb.TimeSeries {
		s := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}}
		for k := 0; k < len(kv); k += 2 {
			s.Labels = append(s.Labels, prompb.Label{Name: kv[k], Value: kv[k+1]})
		}
		return s
	}
	encode := func(ss ...prompb.TimeSeries) []byte {
		raw, err := (&prompb.WriteRequest{Timeseries: ss}).Marshal()
		require.NoError(t, err)
		return snappy.Encode(nil, raw)
	}
	ooo := series(now, "__name__", "ooo_in_request")
	ooo.Samples = append(ooo.Samples, prompb.Sample{Timestamp: now - 1000, Value: 2})
	for k, c := range []struct {
		name string
		body []byte
		code int
		msg  string
	}{
		{"not snappy", []byte("plain text"), 400, "snappy"},
		{"not protobuf", snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), 400, "protobuf"},
		{"empty", nil, 400, "empty request body"},
		{"snappy bomb", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}, 413, "decompresses to"},
		{"oversized", bytes.Repeat([]byte{0}, 101<<20), 413, "over the limit"},
		{"no metric name", encode(series(now, "job", "x"), series(now, "__name__", "kept_1")), 400, "no metric name"},
		{"invalid label name", encode(series(now, "__name__", "m", "bad-name", "x"), series(now, "__name__", "kept_2")), 400, "invalid label name"},
		{"duplicate label", encode(series(now, "__name__", "m", "a", "1", "a", "2"), series(now, "__name__", "kept_3")), 400, "more than once"},
		{"empty label pair", encode(series(now, "__name__", "m", "", ""), series(now, "__name__", "kept_4")), 400, "invalid label name"},
		{"out of order in request", encode(ooo, series(now, "__name__", "kept_5")), 400, "out of order"},
	} {
		resp, err := http.Post(o.url("/api/v1/push"), "application/x-protobuf", bytes.NewReader(c.body))
		require.NoError(t, err, c.name)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, c.code, resp.StatusCode, "%s: %s", c.name, b)
		require.Contains(t, string(b), c.msg, c.name)
		if k >= 5 {
			name := fmt.Sprintf("kept_%d", k-4)
			_, body := rawGet(t, o.url("/prometheus/api/v1/query?query="+name))
			require.Contains(t, body, `"__name__":"`+name+`"`, "the valid series of %q was not kept", c.name)
		}
	}
	// Out of order across requests, against what the ingester holds.
	c := loadgen.NewClient(o.url("/api/v1/push"), "", 5*time.Second)
	require.NoError(t, c.Send(ctxTimeout(t, 5*time.Second), encode(series(now, "__name__", "late"))))
	err := c.Send(ctxTimeout(t, 5*time.Second), encode(series(now-60000, "__name__", "late")))
	require.ErrorContains(t, err, "out of order sample")
	waitReady(t, o.url("/ready"))
}
