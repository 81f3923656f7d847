package loadgen

import (
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// OTLPRequest returns the protobuf bytes of an OTLP
// ExportMetricsServiceRequest holding series [from, to), one point each:
// the value at step, stamped tsMillis, as an OpenTelemetry SDK would send
// what Prometheus scrapes. The series' job and instance become the
// resource's service.name and service.instance.id (which Prometheus's
// translation turns back into job and instance), its metric name the
// metric's name, and its other labels the point's attributes. Counters
// (names ending in _total) are cumulative monotonic sums, everything else
// a gauge, one metric per series; a resource's series are consecutive in
// the catalogue, so they share one ResourceMetrics.
func (g *Generator) OTLPRequest(from, to int, step int, tsMillis int64) []byte {
	if from < 0 || to > len(g.specs) || from > to {
		panic(fmt.Sprintf("loadgen: series range [%d,%d) outside [0,%d)", from, to, len(g.specs)))
	}
	md := pmetric.NewMetrics()
	var (
		sm           pmetric.ScopeMetrics
		job, inst    string
		haveResource bool
	)
	ts := pcommon.Timestamp(tsMillis * 1e6)
	for i := from; i < to; i++ {
		ls := g.series[i]
		if j, in := ls.Get("job"), ls.Get("instance"); !haveResource || j != job || in != inst {
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.name", j)
			rm.Resource().Attributes().PutStr("service.instance.id", in)
			sm = rm.ScopeMetrics().AppendEmpty()
			job, inst, haveResource = j, in, true
		}
		m := sm.Metrics().AppendEmpty()
		name := ls.Get(model.MetricNameLabel)
		m.SetName(name)
		var dp pmetric.NumberDataPoint
		if len(name) > len("_total") && name[len(name)-len("_total"):] == "_total" {
			sum := m.SetEmptySum()
			sum.SetIsMonotonic(true)
			sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp = sum.DataPoints().AppendEmpty()
		} else {
			dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
		}
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(g.Value(i, step))
		ls.Range(func(l labels.Label) {
			switch l.Name {
			case model.MetricNameLabel, "job", "instance":
			default:
				dp.Attributes().PutStr(l.Name, l.Value)
			}
		})
	}
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		// Marshalling what pdata built cannot fail.
		panic(err)
	}
	return b
}
