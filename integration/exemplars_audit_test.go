//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

type rw2Answer struct {
	code               int
	samples, exemplars string
}

func pushV2To(t *testing.T, url string, req *writev2.Request) rw2Answer {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	code, body, header := postRemoteWrite(t, url, snappy.Encode(nil, raw), true)
	t.Logf("%s: %d %s", url, code, body)
	return rw2Answer{code, header.Get("X-Prometheus-Remote-Write-Samples-Written"), header.Get("X-Prometheus-Remote-Write-Exemplars-Written")}
}

// Audit: remote write 2.0 with an out-of-order exemplar. Prometheus 3
// (exemplar storage on) answers 400 with Exemplars-Written 0 ("Receivers
// MUST NOT return a 2xx ... if any ... Exemplars were NOT written");
// Orrery's ingester drops it silently, the distributor answers 204 and
// says it was written (the header counts exemplars sent to ingesters,
// not stored). The same holds for every exemplar an ingester refuses.
func TestAuditExemplarOutOfOrderV2AnswersAsPrometheus3(t *testing.T) {
	o := startOrrery(t, t.TempDir(), "-ingester.max-global-exemplars-per-user=1000")
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, "--enable-feature=exemplar-storage")
	now := time.Now().UnixMilli()
	req := func(sampleT, exT int64, trace string) *writev2.Request {
		st := writev2.NewSymbolTable()
		r := &writev2.Request{Timeseries: []writev2.TimeSeries{{
			LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "audit_ooo_exemplar"), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: sampleT}},
			Exemplars:  []writev2.Exemplar{{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("trace_id", trace), nil), Value: 1, Timestamp: exT}},
		}}}
		r.Symbols = st.Symbols()
		return r
	}
	for _, step := range []struct {
		name string
		req  *writev2.Request
	}{
		{"in order", req(now-2000, now-2000, "a")},
		{"exemplar older than the series' newest", req(now-1000, now-5000, "b")},
	} {
		want := pushV2To(t, prom+"/api/v1/write", step.req)
		got := pushV2To(t, o.url("/api/v1/push"), step.req)
		require.Equal(t, want, got, step.name)
	}
}
