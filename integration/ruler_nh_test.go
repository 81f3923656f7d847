//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestRulerRecordsNativeHistograms: recording rules over native histograms
// write native histograms back through the distributor, and each recorded
// sample is what Prometheus 3 answers for the rule's expression at the
// sample's time on the same data.
func TestRulerRecordsNativeHistograms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules", "anonymous")
	require.NoError(t, os.MkdirAll(rulesDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "nh.yml"), []byte(`groups:
- name: nh
  interval: 1s
  query_offset: 3s
  rules:
  - record: job:rule_nh:rate10s
    expr: sum by (job) (rate(rule_nh[10s]))
  - record: job:rule_nh:sum
    expr: sum by (job) (rule_nh)
`), 0o644))
	o := startOrrery(t, dir, "-ruler.evaluation-interval=1s", "-ruler.poll-interval=1s")
	prom := startPrometheus3WithConfig(t, func(int) string { return "global: {}\n" }, nhReceiverFlags...)

	// Two instances' counter histograms, one a float histogram, pushed
	// every 500 ms for 20 s to both.
	for k := range 40 {
		now := time.Now().UnixMilli()
		var series []prompb.TimeSeries
		for inst := range 2 {
			n := uint64(k*(inst+1) + 1)
			h := &histogram.Histogram{Schema: 1, ZeroThreshold: 1e-3, ZeroCount: n, Count: 3*n + uint64(k), Sum: float64(n) * 1.7,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveBuckets: []int64{int64(n), 0, int64(k) - int64(n)}}
			ph := prompb.FromIntHistogram(now, h)
			if inst == 1 {
				ph = prompb.FromFloatHistogram(now, h.ToFloat(nil))
			}
			series = append(series, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "rule_nh"}, {Name: "instance", Value: strconv.Itoa(inst)}, {Name: "job", Value: "api"}},
				Histograms: []prompb.Histogram{ph}})
		}
		body := writeRequest(t, series...)
		code, msg := pushAs(t, o, "anonymous", body)
		require.Equal(t, http.StatusNoContent, code, msg)
		resp, err := http.Post(prom+"/api/v1/write", "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)

	compared := 0
	for record, expr := range map[string]string{
		"job:rule_nh:rate10s": "sum by (job) (rate(rule_nh[10s]))",
		"job:rule_nh:sum":     "sum by (job) (rule_nh)",
	} {
		code, r := queryAs(t, o, "anonymous", "/query", map[string][]string{"query": {record + "[12s]"}})
		require.Equal(t, http.StatusOK, code, r.Error)
		var res struct {
			Result []struct {
				Histograms [][2]json.RawMessage `json:"histograms"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &res))
		require.Len(t, res.Result, 1, "%s: one job", record)
		for _, p := range res.Result[0].Histograms {
			var sec float64
			require.NoError(t, json.Unmarshal(p[0], &sec))
			want, err := get(prom, "/api/v1/query", map[string][]string{"query": {expr}, "time": {strconv.FormatFloat(sec, 'f', 3, 64)}})
			require.NoError(t, err)
			var wres struct {
				Result []struct {
					Histogram [2]json.RawMessage `json:"histogram"`
				} `json:"result"`
			}
			require.NoError(t, json.Unmarshal(want.Data, &wres))
			require.Len(t, wres.Result, 1, "%s at %v", expr, sec)
			require.JSONEq(t, string(wres.Result[0].Histogram[1]), string(p[1]), "%s at %v", record, sec)
			compared++
		}
	}
	require.Greater(t, compared, 10)
	t.Logf("compared %d recorded histograms with Prometheus 3", compared)
}
