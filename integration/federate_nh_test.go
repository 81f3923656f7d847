//go:build integration

package integration

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/stretchr/testify/require"
)

const auditProtoDelimited = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

// auditCompactFamilies decodes a delimited /federate body and drops the
// empty buckets of every native histogram, which only tell the layout of
// the chunk the sample was read from.
func auditCompactFamilies(t *testing.T, body string) []*dto.MetricFamily {
	t.Helper()
	_, rest, ok := strings.Cut(body, "\n") // the status line federateBody adds
	require.True(t, ok)
	dec := expfmt.NewDecoder(bytes.NewReader([]byte(rest)), expfmt.NewFormat(expfmt.TypeProtoDelim))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			return out
		} else {
			require.NoError(t, err)
		}
		for _, m := range mf.Metric {
			h := m.GetHistogram()
			if h == nil || h.Schema == nil {
				continue
			}
			fh := &histogram.FloatHistogram{Schema: h.GetSchema(), PositiveBuckets: h.PositiveCount, NegativeBuckets: h.NegativeCount}
			for _, s := range h.PositiveSpan {
				fh.PositiveSpans = append(fh.PositiveSpans, histogram.Span{Offset: s.GetOffset(), Length: s.GetLength()})
			}
			for _, s := range h.NegativeSpan {
				fh.NegativeSpans = append(fh.NegativeSpans, histogram.Span{Offset: s.GetOffset(), Length: s.GetLength()})
			}
			fh.Compact(0)
			h.PositiveCount, h.NegativeCount, h.PositiveSpan, h.NegativeSpan = fh.PositiveBuckets, fh.NegativeBuckets, nil, nil
			for _, s := range fh.PositiveSpans {
				h.PositiveSpan = append(h.PositiveSpan, &dto.BucketSpan{Offset: &s.Offset, Length: &s.Length})
			}
			for _, s := range fh.NegativeSpans {
				h.NegativeSpan = append(h.NegativeSpan, &dto.BucketSpan{Offset: &s.Offset, Length: &s.Length})
			}
		}
		out = append(out, mf)
	}
}

// /federate of native histograms (integer and float counters, gauge
// histograms, NHCB, a series switching between floats and histograms,
// classic histograms) against Prometheus 3's: byte for byte in the text
// format (where only NHCB go out, as classic histograms) and, in the
// protobuf formats, equal once empty buckets are dropped. The bytes
// differ there: a histogram read from a chunk carries the empty buckets of
// the chunk's layout, and Orrery cuts its chunks elsewhere than
// Prometheus does (by size and sample count, not Prometheus's predicted
// end times), so the empty buckets differ while every count is the same.
func TestFederateNativeHistogramsMatchPrometheus3(t *testing.T) {
	prom := startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" }, nhReceiverFlags...)
	o := startOrrery(t, t.TempDir())
	start, _ := nhWindow()
	nhWrite(t, nhGenerate(t), start, prom+"/api/v1/write", o.url("/api/v1/push"))
	for _, q := range []string{
		"match[]=" + url.QueryEscape(`{__name__=~"nh_.+"}`),
		"match[]=" + url.QueryEscape(`{__name__=~"nh_.+", instance="2"}`),
		"match[]=" + url.QueryEscape(`nh_queue_depth`),
		"match[]=" + url.QueryEscape(`nh_switch`),
	} {
		for _, accept := range []string{"", "text/plain;version=0.0.4"} {
			want := federateBody(t, prom+"/federate?"+q, accept)
			got := federateBody(t, o.url("/prometheus/federate?"+q), accept)
			require.Equal(t, want, got, "%s (Accept: %q)", q, accept)
		}
		want := federateBody(t, prom+"/federate?"+q, auditProtoDelimited)
		got := federateBody(t, o.url("/prometheus/federate?"+q), auditProtoDelimited)
		require.Equal(t, auditCompactFamilies(t, want), auditCompactFamilies(t, got), "%s: families once empty buckets are dropped", q)
	}
}
