//go:build integration

package integration

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// oooWindow is the out-of-order window Prometheus 3 and Orrery both get:
// longer than the data set, so that every shuffled sample is in it.
const oooWindow = "3h"

// oooWrite sends the native histogram data set to both URLs in a random
// order: batches of steps shuffled, a quarter of them with their steps
// reversed within the request (one series' samples out of order in one
// request). A tenth are sent to orreryURL twice (a sender's retry, which
// Orrery takes as a duplicate; Prometheus refuses some repeated
// out-of-order histograms). before, if set, is called with each batch's
// index and the number of batches before the batch is sent.
func oooWrite(t *testing.T, r *rand.Rand, series []*nhSeries, start time.Time, promURL, orreryURL string, before func(k, n int)) {
	t.Helper()
	var batches [][]int
	for from := 0; from < nhSteps; from += nhV1Batch {
		batches = append(batches, stepRange(from, from+nhV1Batch))
	}
	r.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	for k, steps := range batches {
		if before != nil {
			before(k, len(batches))
		}
		if r.IntN(4) == 0 {
			slices.Reverse(steps)
		}
		v1 := nhRequestV1(series, start, steps)
		v2, _, _ := nhRequestV2(series, start, steps)
		urls := []string{promURL, orreryURL}
		if r.IntN(10) == 0 {
			urls = append(urls, orreryURL)
		}
		for _, u := range urls {
			oooPost(t, u, v1, false, http.StatusNoContent)
			oooPost(t, u, v2, true, http.StatusNoContent)
		}
	}
}

// oooPost sends one remote write request and requires the answer code.
// It returns the answer's body.
func oooPost(t *testing.T, u string, body []byte, v2 bool, code int) string {
	t.Helper()
	got, msg, _ := postRemoteWrite(t, u, body, v2)
	require.Equal(t, code, got, "%s (2.0: %v): %s", u, v2, msg)
	return msg
}

// TestOutOfOrderMatchesPrometheus3 sends the native histogram data set
// (floats, integer and float histograms, NHCB, a series switching types)
// in a shuffled order, with retries, to a Prometheus 3 and an Orrery with
// the same out-of-order window, and requires every query of the corpus to
// answer identically: from memory, after kill -9 (the WAL, and the chunks
// flushed meanwhile, in and out of order), and from the store after a
// clean stop. A sample outside the window is refused by both with a 400,
// and the rest of its request is stored.
func TestOutOfOrderMatchesPrometheus3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string {
		return "global:\n  scrape_interval: 15s\nstorage:\n  tsdb:\n    out_of_order_time_window: " + oooWindow + "\n"
	}, nhReceiverFlags...)
	flags := []string{"-ingester.out-of-order-time-window=" + oooWindow, "-ingester.max-chunk-samples=40",
		"-ingester.flush-period=500ms", "-ingester.handover-on-shutdown=false"}
	o := startOrrery(t, t.TempDir(), flags...)
	start, end := nhWindow()
	series := nhGenerate(t)
	oooWrite(t, rand.New(rand.NewPCG(1, 2)), series, start, prom+"/api/v1/write", o.url("/api/v1/push"), nil)
	require.Greater(t, metricValue(t, o, "orrery_ingester_out_of_order_samples_appended_total"), 1000.0)
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_samples_total", ""), "nothing was refused")

	// Four hours before the newest sample is outside both windows; the
	// request's other series, new, at two hours, is stored by both (out of
	// order in Prometheus, which measures even a new series from its
	// head's newest sample). Remote write 2.0, whose senders are told which
	// samples were refused: 1.0's Prometheus handler drops a whole request.
	k := slices.IndexFunc(series, func(s *nhSeries) bool { return s.v2 && s.points[0].h == nil && s.points[0].fh == nil })
	require.GreaterOrEqual(t, k, 0, "a series of floats sent with 2.0")
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(series[k].lset, nil), Samples: []writev2.Sample{{Value: 1, Timestamp: end.Add(-4 * time.Hour).UnixMilli()}}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "ooo_new"), nil), Samples: []writev2.Sample{{Value: 7, Timestamp: end.Add(-2 * time.Hour).UnixMilli()}}},
	}}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	body := snappy.Encode(nil, raw)
	oooPost(t, prom+"/api/v1/write", body, true, http.StatusBadRequest)
	require.Contains(t, oooPost(t, o.url("/api/v1/push"), body, true, http.StatusBadRequest), "outside the tenant's out-of-order window of 3h")

	compare := func(phase string) {
		compareNativeHistograms(t, prom, o.url("/prometheus"), start, end, phase)
		for _, c := range []struct {
			q  string
			at time.Time
		}{
			{"ooo_new", end.Add(-2*time.Hour + time.Minute)},
			{"count_over_time({__name__=~\".+\"}[5m])", end.Add(-4*time.Hour + time.Minute)},
		} {
			params := map[string][]string{"query": {c.q}, "time": {c.at.Format(time.RFC3339)}}
			want, err := get(prom, "/api/v1/query", params)
			require.NoError(t, err)
			got, err := get(o.url("/prometheus"), "/api/v1/query", params)
			require.NoError(t, err)
			require.Empty(t, diffResponses(want, got), "%s: %s", phase, c.q)
		}
	}
	compare("in memory")
	require.Eventually(t, func() bool { return metricValue(t, o, "orrery_ingester_chunks_flushed_total") > 0 },
		10*time.Second, 100*time.Millisecond, "completed chunks reach the store")
	o.kill9(t)
	o.start(t, flags...)
	compare("after kill -9")
	o.stop(t)
	o.start(t, flags...)
	compare("from the store after a clean stop")
}

// nhProbe is a remote write 1.0 request of one sample of ooo_probe at t.
func nhProbe(t time.Time) []byte {
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "ooo_probe"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: t.UnixMilli()}},
	}}}
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

// TestOutOfOrderClusterRF3: the shuffled data set through a distributor to
// three ingesters at RF=3, one of them killed with -9 a third of the way
// through and started again at two thirds, so that it misses the samples
// sent while it was down (in order and out of order) and replays the rest
// from its WAL. Every query through the querier answers as Prometheus 3's.
func TestOutOfOrderClusterRF3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string {
		return "global:\n  scrape_interval: 15s\nstorage:\n  tsdb:\n    out_of_order_time_window: " + oooWindow + "\n"
	}, nhReceiverFlags...)
	c := newCluster(t, 3)
	ids := []string{"ing1", "ing2", "ing3", "dist", "quer"}
	for _, id := range ids {
		c.extra[id] = []string{"-ingester.out-of-order-time-window=" + oooWindow, "-ingester.max-chunk-samples=40", "-ingester.flush-period=500ms"}
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")

	start, end := nhWindow()
	series := nhGenerate(t)
	oooWrite(t, rand.New(rand.NewPCG(3, 4)), series, start, prom+"/api/v1/write", c.members["dist"].url("/api/v1/push"), func(k, n int) {
		switch k {
		case n / 3:
			c.members["ing2"].kill9(t)
		case 2 * n / 3:
			c.startMember("ing2")
			c.waitRing("dist", "ing1", "ing2", "ing3")
			// The distributor reconnects to ing2 on its own time: a probe
			// series, written to both, shows when ing2 takes writes again.
			probe := 0
			require.Eventually(t, func() bool {
				probe++
				body := nhProbe(end.Add(-time.Duration(probe) * time.Second))
				oooPost(t, prom+"/api/v1/write", body, false, http.StatusNoContent)
				oooPost(t, c.members["dist"].url("/api/v1/push"), body, false, http.StatusNoContent)
				return metricValue(t, c.members["ing2"], "orrery_ingester_samples_appended_total") > 0
			}, 30*time.Second, 200*time.Millisecond, "ing2 takes writes again")
		}
	})
	require.Greater(t, metricValue(t, c.members["ing2"], "orrery_ingester_out_of_order_samples_appended_total"), 100.0,
		"ing2 took out-of-order samples after its restart")
	compareNativeHistograms(t, prom, c.members["quer"].url("/prometheus"), start, end, "ing2 missed a third")
}
