//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// TestExemplarsOffAreNotAcknowledged is defect 9 against the real
// process: a tenant stores no exemplars by default (as in Mimir), and
// remote write 2.0 forbids a 2xx unless everything was written. A 2.0
// request with an exemplar has its samples stored and is answered 400
// with the written counts in the headers; a 1.0 request keeps its 204 and
// the exemplar is counted as dropped.
func TestExemplarsOffAreNotAcknowledged(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	now := time.Now().UnixMilli()

	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "exemplar_v2"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: now - 1000}, {Value: 2, Timestamp: now}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", "abc"), nil), Value: 2, Timestamp: now}},
	}}}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	code, body, header := postRemoteWrite(t, o.url("/api/v1/push"), snappy.Encode(nil, raw), true)
	require.Equal(t, http.StatusBadRequest, code, "no 2xx unless everything was written: %s", body)
	require.Contains(t, body, "err-orrery-exemplars-disabled")
	require.Equal(t, "2", header.Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "0", header.Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	_, got := getAs(t, o.url("/prometheus/api/v1/query?query=exemplar_v2"), "anonymous")
	require.Contains(t, got, `"2"]`, "the samples were stored")

	v1 := seriesAt(now, "__name__", "exemplar_v1")
	v1.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: now}}
	code, msg := pushAs(t, o, "anonymous", writeRequest(t, v1))
	require.Equal(t, http.StatusNoContent, code, msg)
	_, got = getAs(t, o.url("/prometheus/api/v1/query?query=exemplar_v1"), "anonymous")
	require.Contains(t, got, `"1"]`)
	require.Equal(t, 2.0, labelledMetric(t, o, "orrery_distributor_discarded_exemplars_total", `tenant="anonymous"`))
}

// TestExemplarsMatchPrometheus3: a Prometheus 3 with exemplar storage
// scrapes a target whose counter and histogram carry exemplars and
// remote-writes them (2.0) to Orrery, whose tenant stores exemplars;
// /api/v1/query_exemplars answers as Prometheus's own does, at RF=1 and
// through a 3-ingester RF=3 cluster, where each exemplar is held three
// times and answered once.
func TestExemplarsMatchPrometheus3(t *testing.T) {
	t.Parallel()
	o := startOrrery(t, t.TempDir(), "-ingester.max-global-exemplars-per-user=100000")

	reg := promclient.NewRegistry()
	requests := promclient.NewCounterVec(promclient.CounterOpts{Name: "ex_requests_total", Help: "Requests."}, []string{"path"})
	latency := promclient.NewHistogram(promclient.HistogramOpts{Name: "ex_latency_seconds", Help: "Latency.", Buckets: []float64{0.01, 0.1, 1}})
	reg.MustRegister(requests, latency)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(target.Close)
	prom := startPrometheus3WithConfig(t, func(int) string {
		return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ex
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s
    protobuf_message: io.prometheus.write.v2.Request
    send_exemplars: true
    queue_config: {batch_send_deadline: 1s}
`, strings.TrimPrefix(target.URL, "http://"), o.url("/api/v1/push"))
	}, "--enable-feature=exemplar-storage")

	began := time.Now()
	for k := range 150 {
		trace := promclient.Labels{"trace_id": fmt.Sprintf("%016x", k*7919)}
		requests.WithLabelValues([]string{"/a", "/b"}[k%2]).(promclient.ExemplarAdder).AddWithExemplar(1, trace)
		latency.(promclient.ExemplarObserver).ObserveWithExemplar(float64(k%40)/40, trace)
		time.Sleep(time.Until(began.Add(time.Duration(k+1) * 100 * time.Millisecond)))
	}
	to := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	q := url.Values{"query": {`{job="ex"}`}, "start": {strconv.FormatInt(began.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}}
	var want string
	require.Eventually(t, func() bool {
		want = exemplarsOf(t, prom+"/api/v1/query_exemplars?"+q.Encode())
		return strings.Contains(want, "trace_id") && exemplarsOf(t, o.url("/prometheus/api/v1/query_exemplars?"+q.Encode())) == want
	}, 30*time.Second, 500*time.Millisecond, "Orrery's exemplars equal Prometheus's")
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_exemplars_total", ""))
	require.Zero(t, labelledMetric(t, o, "orrery_ingester_exemplars_rejected_total", ""))

	// The same exemplars at RF=3, written by the test as Prometheus sent
	// them (from Prometheus's answer), read back once.
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.extra[id] = []string{"-ingester.max-global-exemplars-per-user=100000"}
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	code, msg := pushAs(t, c.members["dist"], "anonymous", writeRequest(t, exemplarSeries(t, want)...))
	require.Equal(t, http.StatusNoContent, code, msg)
	require.Equal(t, want, exemplarsOf(t, c.members["quer"].url("/prometheus/api/v1/query_exemplars?"+q.Encode())))
}

type exemplarAnswer struct {
	Status string                 `json:"status"`
	Data   []exemplarAnswerSeries `json:"data"`
}

// exemplarAnswerSeries is one series of a query_exemplars answer.
type exemplarAnswerSeries struct {
	SeriesLabels map[string]string `json:"seriesLabels"`
	Exemplars    []struct {
		Labels    map[string]string `json:"labels"`
		Value     string            `json:"value"`
		Timestamp float64           `json:"timestamp"`
	} `json:"exemplars"`
}

// exemplarsOf reads a query_exemplars answer, its series sorted by labels
// (Prometheus answers in map order), as JSON.
func exemplarsOf(t *testing.T, u string) string {
	t.Helper()
	body, err := httpGet(u)
	require.NoError(t, err)
	var a exemplarAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &a), body)
	require.Equal(t, "success", a.Status, body)
	slices.SortFunc(a.Data, func(x, y exemplarAnswerSeries) int {
		return strings.Compare(fmt.Sprint(x.SeriesLabels), fmt.Sprint(y.SeriesLabels))
	})
	out, err := json.Marshal(a.Data)
	require.NoError(t, err)
	return string(out)
}

// exemplarSeries turns an answer of exemplarsOf into remote-write series:
// each series with a sample and its exemplars at their times.
func exemplarSeries(t *testing.T, answer string) []prompb.TimeSeries {
	t.Helper()
	var data []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    map[string]string `json:"labels"`
			Value     string            `json:"value"`
			Timestamp float64           `json:"timestamp"`
		} `json:"exemplars"`
	}
	require.NoError(t, json.Unmarshal([]byte(answer), &data))
	var out []prompb.TimeSeries
	for _, s := range data {
		var ts prompb.TimeSeries
		labels.FromMap(s.SeriesLabels).Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, e := range s.Exemplars {
			v, err := strconv.ParseFloat(e.Value, 64)
			require.NoError(t, err)
			ms := int64(math.Round(e.Timestamp * 1000))
			ts.Samples = append(ts.Samples, prompb.Sample{Value: v, Timestamp: ms})
			var el []prompb.Label
			labels.FromMap(e.Labels).Range(func(l labels.Label) {
				el = append(el, prompb.Label{Name: l.Name, Value: l.Value})
			})
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: el, Value: v, Timestamp: ms})
		}
		out = append(out, ts)
	}
	return out
}
