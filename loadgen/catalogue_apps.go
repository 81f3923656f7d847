package loadgen

var promHandlers = []struct {
	handler string
	rate    float64
}{
	{"/api/v1/query", 8}, {"/api/v1/query_range", 4}, {"/api/v1/label/:name/values", 1},
	{"/graph", 0.2}, {"/config", 0.05}, {"/flags", 0.05},
}

// codeShares scale a handler's rate per status code.
var promCodes = []struct {
	code  string
	share float64
}{{"200", 1}, {"400", 0.02}, {"503", 0.005}}

// histogramDef describes a histogram family: bucket bounds as exposed, the
// share of observations per band and a representative value per band.
type histogramDef struct {
	les    []string
	shares []float64
	mids   []float64
}

var requestDuration = histogramDef{
	les:    []string{"0.1", "0.2", "0.4", "1", "3", "8", "20", "60", "120", "+Inf"},
	shares: []float64{0.6, 0.2, 0.1, 0.05, 0.03, 0.01, 0.005, 0.003, 0.001, 0.001},
	mids:   []float64{0.05, 0.15, 0.3, 0.7, 2, 5.5, 14, 40, 90, 150},
}

// chunkRange has empty low bands, as a real Prometheus does: compacted
// chunks almost always span minutes to hours.
var chunkRange = histogramDef{
	les: []string{"100", "400", "1600", "6400", "25600", "102400", "409600",
		"1.6384e+06", "6.5536e+06", "2.62144e+07", "+Inf"},
	shares: []float64{0, 0, 0, 0.005, 0.005, 0.01, 0.03, 0.1, 0.8, 0.05, 0},
	mids:   []float64{50, 250, 1000, 4000, 16000, 64000, 256000, 1e6, 4e6, 1.6e7, 3e7},
}

func (b *builder) prometheusSeries(instance string) {
	base := []string{"job", "prometheus", "instance", instance}
	for _, h := range promHandlers {
		for _, c := range promCodes {
			b.counter(true, h.rate*c.share, with(base, "__name__", "prometheus_http_requests_total", "code", c.code, "handler", h.handler)...)
		}
	}
	for _, h := range promHandlers {
		b.histogram("prometheus_http_request_duration_seconds", with(base, "handler", h.handler), requestDuration, h.rate)
	}
	b.histogram("prometheus_tsdb_compaction_chunk_range", base, chunkRange, 3)
	b.summary("prometheus_tsdb_wal_fsync_duration_seconds", base)
	for _, c := range []struct {
		code string
		rate float64
	}{{"200", 1}, {"500", 0.002}, {"503", 0.001}} {
		b.counter(true, c.rate, with(base, "__name__", "promhttp_metric_handler_requests_total", "code", c.code)...)
	}
}

// histogram adds the _bucket series, _sum and _count of one child.
func (b *builder) histogram(name string, base []string, def histogramDef, rate float64) {
	uptime := drawUptime(b.groupKey(name))
	h := &histShape{mids: def.mids}
	for _, share := range def.shares {
		h.bands = append(h.bands, newCounterShapeUptime(b.nextKey(), rate*share, uptime))
	}
	for i, le := range def.les {
		b.add(spec{kind: kindBucket, integer: true, idx: i, hist: h}, with(base, "__name__", name+"_bucket", "le", le)...)
	}
	b.add(spec{kind: kindHistSum, hist: h}, with(base, "__name__", name+"_sum")...)
	b.add(spec{kind: kindBucket, integer: true, idx: len(def.les) - 1, hist: h}, with(base, "__name__", name+"_count")...)
}

// summary adds quantile gauges that share a key, so they stay ordered, plus
// _sum and _count counters.
func (b *builder) summary(name string, base []string) {
	key := b.groupKey(name)
	for i, q := range []string{"0.5", "0.9", "0.99"} {
		b.add(spec{kind: kindQuantile, idx: i, key: key}, with(base, "__name__", name, "quantile", q)...)
	}
	b.counter(false, 0.008, with(base, "__name__", name+"_sum")...)
	b.counter(true, 2, with(base, "__name__", name+"_count")...)
}

func (b *builder) apiSeries(instance string) {
	base := []string{"job", "api", "instance", instance}
	methods := []struct {
		method string
		rate   float64
	}{{"GET", 1}, {"POST", 0.3}}
	envs := []struct {
		env  string
		rate float64
	}{{"production", 20}, {"staging", 2}, {"testing", 0.5}, {"development", 0.1}}
	for _, m := range methods {
		for _, h := range []string{"/messages", "/users"} {
			for _, e := range envs {
				b.counter(true, m.rate*e.rate, with(base, "__name__", "api_http_requests_total",
					"method", m.method, "handler", h, "environment", e.env)...)
			}
		}
	}
	paths := []struct {
		path string
		rate float64
	}{{"/", 5}, {"/api", 10}, {"/login", 1}}
	statuses := []struct {
		status string
		share  float64
	}{{"200", 1}, {"404", 0.05}, {"500", 0.01}}
	for _, m := range methods {
		for _, p := range paths {
			for _, s := range statuses {
				if b.inst == 0 && m.method == "GET" && p.path == "/api" && s.status == "200" {
					b.reset = len(b.specs)
				}
				b.counter(true, m.rate*p.rate*s.share, with(base, "__name__", "http_requests_total",
					"method", m.method, "path", p.path, "status", s.status)...)
			}
		}
	}
}
