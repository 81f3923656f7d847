package store

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	chunksWritten    prometheus.Counter
	bytesWritten     prometheus.Counter
	putDuration      prometheus.Histogram
	selectDuration   *prometheus.HistogramVec
	retentionDeleted prometheus.Counter
	retentionVisited *prometheus.CounterVec
	compactedChunks  prometheus.Counter
	damagedBlocks    prometheus.Counter
	dbSize           prometheus.GaugeFunc
	blockCache       *prometheus.CounterVec
}

// Query latencies range from sub-millisecond index hits to seconds-long
// scans, and Put latency is dominated by one fsync.
var durationBuckets = prometheus.ExponentialBuckets(0.0005, 4, 9)

func newMetrics(path string) *metrics {
	return &metrics{
		chunksWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orrery_store_chunks_written_total",
			Help: "Chunks written to the store, re-flushes of an existing chunk included.",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orrery_store_bytes_written_total",
			Help: "Chunk data bytes written to the store.",
		}),
		putDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orrery_store_put_duration_seconds",
			Help:    "Time to write one batch of chunks, commit and fsync included.",
			Buckets: durationBuckets,
		}),
		selectDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orrery_store_select_duration_seconds",
			Help:    "Time to answer one query against the store, by method.",
			Buckets: durationBuckets,
		}, []string{"method"}),
		retentionDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orrery_store_retention_deleted_chunks_total",
			Help: "Chunks deleted by retention: older than the tenant's retention, or wholly inside a tombstone.",
		}),
		retentionVisited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_store_retention_series_visited_total",
			Help: "Series whose chunks retention looked at: listed, those the active index and the postings named; all, by a walk of every series (a file from before the active index, or a tombstone matching every series).",
		}, []string{"walk"}),
		compactedChunks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orrery_store_compacted_chunks_total",
			Help: "Chunks moved from the chunks bucket into cold blocks by compaction.",
		}),
		damagedBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orrery_store_damaged_blocks_total",
			Help: "Cold blocks found damaged (checksum or decoding) by a read or a compaction; their chunks are skipped, the rest is served.",
		}),
		// The file size, not bbolt's page count, because free pages still
		// occupy disk and the disk is what fills up.
		dbSize: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orrery_store_db_size_bytes",
			Help: "Size of the store file on disk.",
		}, func() float64 {
			fi, err := os.Stat(path)
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	m.retentionVisited.WithLabelValues("listed")
	m.retentionVisited.WithLabelValues("all")
	return []prometheus.Collector{m.chunksWritten, m.bytesWritten, m.putDuration, m.selectDuration, m.retentionDeleted, m.retentionVisited, m.compactedChunks, m.damagedBlocks, m.dbSize, m.blockCache}
}

// register registers all collectors or none, so that a failed Open leaves
// reg as it found it.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// unregister lets a Store be reopened with the same registry, as a restarted
// component in the same process does.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
