package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	f := func(in []time.Duration, want time.Duration) {
		t.Helper()
		orig := append([]time.Duration(nil), in...)
		require.Equal(t, want, median(in))
		require.Equal(t, orig, in, "median must not reorder its input")
	}
	f(nil, 0)
	f([]time.Duration{7}, 7)
	f([]time.Duration{3, 1, 2}, 2)
	f([]time.Duration{900, 5, 7}, 7) // one slow outlier does not move it
	f([]time.Duration{4, 1, 3, 2}, 2)
	f([]time.Duration{10, 20}, 15)
}

func TestGeomean(t *testing.T) {
	f := func(in []float64, want float64, wantOK bool) {
		t.Helper()
		got, ok := geomean(in)
		require.Equal(t, wantOK, ok)
		require.InDelta(t, want, got, want*1e-9)
	}
	f([]float64{4}, 4, true)
	f([]float64{1, 100}, 10, true)
	f([]float64{2, 8, 4}, 4, true)
	f(nil, 0, false)
	f([]float64{1, 0}, 0, false)
	f([]float64{1, -1}, 0, false)
	f([]float64{1, math.NaN()}, 0, false)
	f([]float64{1, math.Inf(1)}, 0, false)
	// A product of these overflows float64; the mean does not.
	many := make([]float64, 400)
	for i := range many {
		many[i] = 1e300
	}
	f(many, 1e300, true)
}

func TestParseQueryTime(t *testing.T) {
	f := func(in string, want time.Time) {
		t.Helper()
		got, err := parseQueryTime("-start", in)
		require.NoError(t, err)
		require.True(t, want.Equal(got), "%v != %v", want, got)
	}
	f("1700000000", time.Unix(1700000000, 0))
	f("1700000000.5", time.Unix(1700000000, 5e8))
	f("2023-11-14T22:13:20Z", time.Unix(1700000000, 0))
	f("2023-11-14T23:13:20.25+01:00", time.Unix(1700000000, 25e7))
	for _, bad := range []string{"", "yesterday", "NaN", "+Inf", "2023-11-14"} {
		_, err := parseQueryTime("-start", bad)
		require.Error(t, err, bad)
	}
}

func TestParseQueryFlags(t *testing.T) {
	base := []string{"-queries", "q.txt", "-start", "1000", "-end", "2000"}
	cfg, err := parseQueryFlags(append(base, "-params", "nocache=1", "-tenant", "t1"), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "1", cfg.params.Get("nocache"))
	require.Equal(t, "t1", cfg.tenant)
	require.Equal(t, 3, cfg.runs)
	require.Equal(t, 1, cfg.warmup)
	require.Equal(t, time.Minute, cfg.step)

	for name, args := range map[string][]string{
		"no queries file":  {"-start", "1000", "-end", "2000"},
		"end before start": {"-queries", "q", "-start", "2000", "-end", "1000"},
		"no end":           {"-queries", "q", "-start", "1000"},
		"zero runs":        append(base, "-runs", "0"),
		"negative warm-up": append(base, "-warmup", "-1"),
		"zero step":        append(base, "-step", "0s"),
		"relative url":     append(base, "-url", "/prometheus"),
		"params sets step": append(base, "-params", "step=1"),
		"stray argument":   append(base, "extra"),
	} {
		_, err := parseQueryFlags(args, io.Discard)
		require.Error(t, err, name)
	}
}

func TestReadQueries(t *testing.T) {
	qs, err := readQueries(strings.NewReader("# a dashboard\n\nup\n  sum by (job) (up)  \n#commented()\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"up", "sum by (job) (up)"}, qs)
	_, err = readQueries(strings.NewReader("# only comments\n\n"))
	require.Error(t, err)
}

func TestCheckResponse(t *testing.T) {
	ok := `{"status":"success","data":{"resultType":"matrix","result":[
		{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]},
		{"metric":{"a":"2"},"values":[[1,"3"]]}]}}`
	shape, err := checkResponse(200, []byte(ok))
	require.NoError(t, err)
	require.Equal(t, resultShape{Series: 2, Points: 3}, shape)

	empty := `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	shape, err = checkResponse(200, []byte(empty))
	require.NoError(t, err)
	require.Zero(t, shape)

	for name, c := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"API error":      {422, `{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`, "too many samples"},
		"error with 200": {200, `{"status":"error","errorType":"internal","error":"boom"}`, "boom"},
		"success on 503": {503, ok, "HTTP 503"},
		"not JSON":       {502, "<html>Bad Gateway</html>", "not a Prometheus API answer"},
		"vector":         {200, `{"status":"success","data":{"resultType":"vector","result":[]}}`, "vector"},
	} {
		_, err := checkResponse(c.status, []byte(c.body))
		require.ErrorContains(t, err, c.want, name)
	}
}

// fakeAPI answers query_range with a fixed matrix, remembering each
// request's form and tenant; fail, when set, answers a query with an error.
type fakeAPI struct {
	mu    sync.Mutex
	forms []map[string]string
	fail  string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/prometheus/api/v1/query_range" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form := map[string]string{"tenant": r.Header.Get("X-Scope-OrgID")}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	if r.PostForm.Get("query") == f.fail {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		return
	}
	_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`)
}

func TestTimeQueries(t *testing.T) {
	api := &fakeAPI{fail: "broken("}
	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg := queryConfig{
		url: srv.URL + "/prometheus/", start: time.Unix(1000, 0), end: time.Unix(4600, 0),
		step: time.Minute, runs: 3, warmup: 2, tenant: "team-a",
		params: map[string][]string{"nocache": {"1"}}, timeout: 10 * time.Second,
	}
	rep, err := timeQueries(context.Background(), cfg, []string{"up", "sum(up)"}, io.Discard)
	require.NoError(t, err)
	require.Len(t, rep.Queries, 2)
	for _, q := range rep.Queries {
		require.Len(t, q.RunsMs, 3, "warm-up runs are not timed")
		require.Equal(t, resultShape{Series: 1, Points: 1}, q.resultShape)
	}
	require.Len(t, api.forms, 2*(2+3))
	require.Equal(t, map[string]string{
		"tenant": "team-a", "query": "up", "start": "1000", "end": "4600", "step": "60", "nocache": "1",
	}, api.forms[0])
	require.Equal(t, "sum(up)", api.forms[9]["query"])

	// An error answer ends the run and names the query.
	_, err = timeQueries(context.Background(), cfg, []string{"up", "broken("}, io.Discard)
	require.ErrorContains(t, err, `query 2 "broken("`)
	require.ErrorContains(t, err, "parse error")
}

func TestQueryReport(t *testing.T) {
	dir := t.TempDir()
	files := 0
	write := func(name string, medians []float64, series []int) string {
		rep := queryReport{}
		queries := []string{"up", "sum by (job) (up)"}
		var ms []float64
		for i, q := range queries {
			rep.Queries = append(rep.Queries, queryResult{Query: q, MedianMs: medians[i], resultShape: resultShape{Series: series[i]}})
			ms = append(ms, medians[i])
			rep.TotalMs += medians[i]
		}
		rep.GeomeanMs, _ = geomean(ms)
		files++ // names may hold "=", which paths must not
		path := filepath.Join(dir, fmt.Sprintf("%d.json", files))
		data, err := json.Marshal(rep)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		return name + "=" + path
	}
	prom := write("prom", []float64{100, 400}, []int{3, 2})
	fast := write("fast", []float64{10, 40}, []int{3, 2})
	odd := write("RF=3 odd", []float64{200, 800}, []int{3, 1})
	var out bytes.Buffer
	require.Equal(t, 0, queryReportMain([]string{prom, fast, odd}, &out, io.Discard))
	got := out.String()
	require.Contains(t, got, "| prom | 200.0 | 1.00 | 500.0 |")
	require.Contains(t, got, "| fast | 20.0 | 0.10 | 50.0 |")
	require.Contains(t, got, "| RF=3 odd | 400.0 | 2.00 | 1000.0 |")
	require.Contains(t, got, "| 2 | `sum by (job) (up)` | 2 | 400.0 | 40.0 | 800.0 (1 series!) |")

	// Reports of different dashboards cannot be compared.
	other := filepath.Join(dir, "other.json")
	require.NoError(t, os.WriteFile(other, []byte(`{"queries":[{"query":"up"},{"query":"down"}]}`), 0o644))
	require.Equal(t, 1, queryReportMain([]string{prom, "x=" + other}, io.Discard, io.Discard))
	for _, bad := range []string{"nofile", "=" + other, "x=", "x=" + filepath.Join(dir, "missing.json")} {
		require.Equal(t, 2, queryReportMain([]string{bad}, io.Discard, io.Discard), bad)
	}
}
