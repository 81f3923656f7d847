package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	samplesAppended  prometheus.Counter
	oooAppended      prometheus.Counter
	samplesRejected  *prometheus.CounterVec
	seriesCreated    prometheus.Counter
	seriesRemoved    prometheus.Counter
	walWrite         prometheus.Histogram
	walCorruptions   *prometheus.CounterVec
	walDropped       prometheus.Counter
	replayDuration   prometheus.Gauge
	flushDuration    prometheus.Histogram
	chunksFlushed    prometheus.Counter
	recentChunks     prometheus.Gauge
	recentBytes      prometheus.Gauge
	flushFailures    prometheus.Counter
	checkpointTime   prometheus.Histogram
	checkpointFailed prometheus.Counter
	queries          prometheus.Counter
	queriesCanceled  prometheus.Counter
	chunksReceived   prometheus.Counter
	chunksRefused    prometheus.Counter

	exemplarsAppended prometheus.Counter
	exemplarsRejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		samplesAppended: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_samples_appended_total", Help: "Samples appended to memory after being logged to the WAL."}),
		oooAppended:     f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_out_of_order_samples_appended_total", Help: "Samples older than their series' newest stored within the tenant's out_of_order_time_window (also counted in orrery_ingester_samples_appended_total)."}),
		samplesRejected: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingester_samples_rejected_total", Help: "Samples rejected by the ingester, per tenant and reason."}, []string{"tenant", "reason"}),
		seriesCreated:   f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_series_created_total", Help: "Series created in memory."}),
		seriesRemoved:   f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_series_removed_total", Help: "Idle series removed from memory."}),
		walWrite: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_ingester_wal_write_duration_seconds", Help: "Time to write one push's records to the WAL.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 8)}),
		walCorruptions: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingester_wal_corruptions_total", Help: "Damage found at WAL replay, by kind: segment or checkpoint (unreadable from there to the end of that file), record (one record that does not decode). See ingester/WAL.md for what each loses."}, []string{"kind"}),
		walDropped:     f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_wal_replay_dropped_samples_total", Help: "Samples read at WAL replay and dropped because the record naming their series was lost to damage."}),
		replayDuration: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_ingester_wal_replay_duration_seconds", Help: "How long the last WAL replay took."}),
		flushDuration: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_ingester_flush_duration_seconds", Help: "Time to flush one tenant's completed chunks to the store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		chunksFlushed:     f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_chunks_flushed_total", Help: "Chunks written to the store."}),
		recentChunks:      f.NewGauge(prometheus.GaugeOpts{Name: "orrery_ingester_retained_chunks", Help: "Stored chunks kept in memory for queries (-ingester.retain-period), as the last flush left them."}),
		recentBytes:       f.NewGauge(prometheus.GaugeOpts{Name: "orrery_ingester_retained_chunk_bytes", Help: "Encoded bytes of the stored chunks kept in memory for queries (-ingester.retain-period), as the last flush left them."}),
		flushFailures:     f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_flush_failures_total", Help: "Failed flushes; the chunks stay in memory and are retried."}),
		checkpointTime:    f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_ingester_checkpoint_duration_seconds", Help: "Time to write a checkpoint.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 7)}),
		checkpointFailed:  f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_checkpoint_failures_total", Help: "Failed checkpoints."}),
		chunksReceived:    f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_handover_chunks_received_total", Help: "Chunks received from leaving ingesters."}),
		exemplarsAppended: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_exemplars_appended_total", Help: "Exemplars stored."}),
		exemplarsRejected: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingester_exemplars_rejected_total", Help: "Exemplars not stored, by tenant and reason: out_of_order, label_length, invalid, disabled (the tenant's max_global_exemplars_per_user is 0), no_series (none of the push's samples created the series)."}, []string{"tenant", "reason"}),
		chunksRefused:     f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_handover_chunks_refused_total", Help: "Chunks received from leaving ingesters that do not decode into ordered samples, dropped so that they cannot block the handover."}),
		queries:           f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_queries_total", Help: "Selects served (QueryStream calls), sharded or not: with -querier.minimize-ingester-requests a settled RF=3 cluster's ingesters each see about two thirds of the selects."}),
		queriesCanceled:   f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_queries_canceled_total", Help: "Queries abandoned mid-stream because the querier canceled them or their deadline passed."}),
	}
	// Every kind reads 0 until it happens, so a query or an alert on it
	// tells "no damage" from "not measured".
	for _, k := range damageKinds {
		m.walCorruptions.WithLabelValues(k)
	}
	return m
}

// activeSeries reports each tenant's in-memory series, what the series
// limits count. It is read at scrape time so that pushes pay nothing for it.
type activeSeries struct {
	i    *Ingester
	desc *prometheus.Desc
}

func newActiveSeries(i *Ingester) activeSeries {
	return activeSeries{i: i, desc: prometheus.NewDesc("orrery_ingester_active_series",
		"Series in memory per tenant, which the series limits count; a series leaves memory once flushed and idle for -ingester.series-idle-timeout.",
		[]string{"tenant"}, nil)}
}

func (c activeSeries) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c activeSeries) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.i.allHeads() {
		h.mu.RLock()
		n := len(h.byRef)
		h.mu.RUnlock()
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), h.id)
	}
}
