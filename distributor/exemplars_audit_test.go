package distributor

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
)

// Audit: every invalid exemplar formats its own error message, with the
// whole series' labels (seriesString), although only the first message
// is kept. A series with long labels (30 values of 2,000 bytes, within
// the default limits) and many cheap invalid exemplars (a far-future
// timestamp: ~12 bytes each in 2.0) makes the distributor allocate
// ~60 KB per 12 request bytes, uncharged by the decoded-bytes budget:
// a ~5000x amplification of CPU and garbage per request.
func TestAuditInvalidExemplarsAllocateBounded(t *testing.T) {
	d, _ := newLimitedDistributor(t, 1, &fixedLimits{l: limits.Limits{MaxGlobalExemplarsPerUser: 10,
		MaxLabelNamesPerSeries: 30, MaxLabelValueLength: 2048, CreationGracePeriod: 10 * time.Minute}})
	st := writev2.NewSymbolTable()
	pairs := []string{"__name__", "victim"}
	for k := 0; k < 29; k++ {
		pairs = append(pairs, fmt.Sprintf("l%02d", k), strings.Repeat(string(rune('a'+k%26)), 2000))
	}
	future := time.Now().Add(24 * time.Hour).UnixMilli()
	const n = 5000
	exs := make([]writev2.Exemplar, n)
	for k := range exs {
		exs[k] = writev2.Exemplar{Value: 1, Timestamp: future}
	}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labels.FromStrings(pairs...), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		Exemplars:  exs,
	}}}
	req.Symbols = st.Symbols()
	body := encodeV2(t, req)
	post(d, body, v2Header) // warm the pools
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := post(d, body, v2Header)
	runtime.ReadMemStats(&after)
	require.Equal(t, 400, w.Code)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("request %d bytes (snappy), allocated %d MB", len(body), alloc>>20)
	require.Less(t, alloc, uint64(16<<20), "validating %d invalid exemplars allocated %d MB for a %d-byte request", n, alloc>>20, len(body))
}

// Audit: Prometheus's receiver sorts a series' exemplars by time (then
// value, labels) before appending them (storage/remote/write_handler.go:
// "AppendExemplars requires exemplars sorted by timestamp"), so exemplars
// sent out of order are all stored. The distributor sends them in request
// order, and the ingester, which takes only exemplars newer than the
// series' newest, drops all but the newest (see
// ingester TestAuditUnsortedExemplarsInOnePushAreKept).
func TestAuditExemplarsAreSentSorted(t *testing.T) {
	d, clients := newLimitedDistributor(t, 1, &fixedLimits{l: limits.Limits{MaxGlobalExemplarsPerUser: 10}})
	s := ts(one, "__name__", "a")
	s.Exemplars = []prompb.Exemplar{
		{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}}, Value: 2, Timestamp: 2000},
		{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: 1000},
	}
	w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}), nil)
	require.Equal(t, 204, w.Code, w.Body.String())
	require.Equal(t, []string{"a t1 1000", "a t2 2000"}, clients["ing-0"].exemplars)
}

// Audit: Prometheus's head drops empty-valued exemplar labels
// (e.Labels.WithoutEmpty() in appendExemplars), as the distributor does a
// series' own; the distributor sends an exemplar's empty-valued labels on,
// so {trace_id="", span_id="s"} is stored and answered as such, and it
// counts toward the 128 characters and the duplicate check.
func TestAuditEmptyExemplarLabelValuesAreDropped(t *testing.T) {
	d, clients := newLimitedDistributor(t, 1, &fixedLimits{l: limits.Limits{MaxGlobalExemplarsPerUser: 10}})
	s := ts(one, "__name__", "a")
	s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: ""}, {Name: "span_id", Value: "s"}}, Value: 1, Timestamp: 1000}}
	w := post(d, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}), nil)
	require.Equal(t, 204, w.Code, w.Body.String())
	require.Len(t, clients["ing-0"].rawExemplarLabels, 1)
	require.Equal(t, labels.FromStrings("span_id", "s"), clients["ing-0"].rawExemplarLabels[0])
}
