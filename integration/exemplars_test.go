//go:build integration

package integration

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// TestExemplarsAreNotAcknowledged is defect 9 against the real process:
// Orrery does not store exemplars, and remote write 2.0 forbids a 2xx
// unless everything was written. A 2.0 request with an exemplar has its
// samples stored and is answered 400 with the written counts in the
// headers; a 1.0 request keeps its 204 and the exemplar is counted as
// dropped.
func TestExemplarsAreNotAcknowledged(t *testing.T) {
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
	r, err := http.NewRequest(http.MethodPost, o.url("/api/v1/push"), bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "no 2xx unless everything was written: %s", body)
	require.Contains(t, string(body), "err-orrery-exemplars-unsupported")
	require.Equal(t, "2", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
	require.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"))
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
