package loadgen

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// An OTLP export carries each series' value at the step once, with its
// labels split between the resource (job, instance) and the point.
func TestOTLPRequestCarriesEverySample(t *testing.T) {
	g := NewWithSeries(1, 500)
	const step, ts = 7, int64(1_700_000_000_000)
	req := pmetricotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(g.OTLPRequest(100, 400, step, ts)))
	rms := req.Metrics().ResourceMetrics()
	require.Greater(t, rms.Len(), 1, "several resources")
	k := 100
	for r := range rms.Len() {
		rm := rms.At(r)
		job, _ := rm.Resource().Attributes().Get("service.name")
		inst, _ := rm.Resource().Attributes().Get("service.instance.id")
		ms := rm.ScopeMetrics().At(0).Metrics()
		for m := range ms.Len() {
			ls := g.Series()[k]
			require.Equal(t, ls.Get("job"), job.Str())
			require.Equal(t, ls.Get("instance"), inst.Str())
			metric := ms.At(m)
			require.Equal(t, ls.Get("__name__"), metric.Name())
			var dp pmetric.NumberDataPoint
			if metric.Type() == pmetric.MetricTypeSum {
				require.True(t, metric.Sum().IsMonotonic())
				dp = metric.Sum().DataPoints().At(0)
			} else {
				dp = metric.Gauge().DataPoints().At(0)
			}
			require.Equal(t, g.Value(k, step), dp.DoubleValue())
			require.Equal(t, ts*1e6, int64(dp.Timestamp()))
			require.Equal(t, ls.Len()-3, dp.Attributes().Len(), ls.String())
			k++
		}
	}
	require.Equal(t, 400, k)
}
