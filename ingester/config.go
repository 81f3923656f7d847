package ingester

import (
	"errors"
	"flag"
	"time"
)

// Config is the ingester's configuration. Zero values are invalid except
// where a field says otherwise; RegisterFlags sets the defaults.
type Config struct {
	// MaxChunkSamples cuts a chunk after this many samples; 120 is where
	// Gorilla compression stops improving (Prometheus uses the same).
	MaxChunkSamples int `yaml:"max_chunk_samples"`
	// MaxChunkAge cuts chunks at the boundaries of periods this long, so
	// no chunk spans longer (chunkPeriodEnd).
	MaxChunkAge time.Duration `yaml:"max_chunk_age"`
	// ChunkIdleTimeout cuts and flushes a head chunk that has received no
	// sample for this long (wall clock), so quiet series reach the store.
	ChunkIdleTimeout time.Duration `yaml:"chunk_idle_timeout"`
	// SeriesIdleTimeout forgets a series held in memory with no chunks left
	// and no sample for this long.
	SeriesIdleTimeout time.Duration `yaml:"series_idle_timeout"`
	// FlushPeriod is how often completed chunks are written to the store.
	FlushPeriod time.Duration `yaml:"flush_period"`
	// RetainPeriod keeps in-order chunks in memory once they are stored
	// while their newest sample is within this of the wall clock (either
	// side), so that a query of the newest minutes, a dashboard's refresh,
	// reads memory alone; zero releases chunks as soon as they are stored.
	RetainPeriod time.Duration `yaml:"retain_period"`
	// CheckpointPeriod is how often the in-memory state is checkpointed so
	// that older WAL segments can be deleted; it bounds replay time.
	CheckpointPeriod time.Duration `yaml:"checkpoint_period"`
	// MetadataRetainPeriod forgets metric metadata not received for this long.
	MetadataRetainPeriod time.Duration `yaml:"metadata_retain_period"`
	// QueryBatchSeries is how many series a QueryStream message carries.
	QueryBatchSeries int `yaml:"query_batch_series"`
	// HandoverOnShutdown makes SIGTERM hand every series to its new owners
	// and leave the ring (scale-in); off, SIGTERM keeps the series on disk
	// and the tokens in the ring for a restart. POST /ingester/shutdown
	// always hands over.
	HandoverOnShutdown bool `yaml:"handover_on_shutdown"`
	// ShutdownTimeout bounds a process's shutdown, an ingester's handover
	// retries included; past it a leaving ingester exits keeping its ring
	// entry. Kubernetes' terminationGracePeriodSeconds must exceed it. Zero
	// gives no time: a leaving ingester exits at once, keeping its entry.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// CompactAfter is how long after a 2-hour partition of time ends its
	// stored chunks are compacted (store/DESIGN.md, "Cold partitions");
	// zero never compacts. A chunk arriving later for it is stored as
	// usual and compacted at the next pass.
	CompactAfter time.Duration `yaml:"compact_after"`
}

// RegisterFlags registers the ingester's flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxChunkSamples, "ingester.max-chunk-samples", 120, "Cut a chunk after this many samples.")
	fs.DurationVar(&c.MaxChunkAge, "ingester.max-chunk-age", 2*time.Hour, "Cut chunks at the boundaries of periods this long (offset per series, the same on every replica), so no chunk spans longer.")
	fs.DurationVar(&c.ChunkIdleTimeout, "ingester.chunk-idle-timeout", 5*time.Minute, "Cut and flush a head chunk that received no sample for this long.")
	fs.DurationVar(&c.SeriesIdleTimeout, "ingester.series-idle-timeout", time.Hour, "Forget an in-memory series with no unflushed chunks after this long without samples.")
	fs.DurationVar(&c.FlushPeriod, "ingester.flush-period", 15*time.Second, "How often completed chunks are flushed to the store; it bounds how long completed chunks wait in memory.")
	fs.DurationVar(&c.RetainPeriod, "ingester.retain-period", 15*time.Minute, "Keep flushed chunks in memory while their newest sample is within this of the clock, so queries of the newest minutes do not read the store; 0 releases them once stored.")
	fs.DurationVar(&c.CheckpointPeriod, "ingester.checkpoint-period", 5*time.Minute, "How often memory is checkpointed and older WAL segments deleted.")
	fs.DurationVar(&c.MetadataRetainPeriod, "ingester.metadata-retain-period", 10*time.Minute, "Forget metric metadata not received for this long; senders repeat it every minute.")
	fs.IntVar(&c.QueryBatchSeries, "ingester.query-batch-series", 128, "Series per QueryStream message.")
	fs.DurationVar(&c.ShutdownTimeout, "ingester.shutdown-timeout", 5*time.Minute, "How long shutting down may take: a leaving ingester retries a failed handover until then, then exits keeping its place in the ring (its data stays on its disk). Keep Kubernetes' terminationGracePeriodSeconds above it.")
	fs.DurationVar(&c.CompactAfter, "ingester.compact-after", time.Hour, "Compact the stored chunks of each 2-hour partition of time this long after it ends (zero never compacts); checked every 10 minutes.")
	fs.BoolVar(&c.HandoverOnShutdown, "ingester.handover-on-shutdown", true, "On SIGTERM, hand series to their new owners and leave the ring; false keeps them on this ingester's disk and its tokens in the ring, for restarts with a persistent data dir. POST /ingester/shutdown always hands over.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.MaxChunkSamples < 1 || c.MaxChunkSamples > 65535:
		return errors.New("ingester.max-chunk-samples must be between 1 and 65535")
	case c.MaxChunkAge < time.Millisecond:
		// Chunk periods are whole milliseconds, as sample timestamps are.
		return errors.New("ingester.max-chunk-age must be at least 1ms")
	case c.ChunkIdleTimeout <= 0, c.SeriesIdleTimeout <= 0:
		return errors.New("ingester idle timeouts must be positive")
	case c.FlushPeriod <= 0 || c.CheckpointPeriod <= 0:
		return errors.New("ingester.flush-period and ingester.checkpoint-period must be positive")
	case c.RetainPeriod < 0:
		return errors.New("ingester.retain-period must not be negative")
	case c.MetadataRetainPeriod <= 0:
		return errors.New("ingester.metadata-retain-period must be positive")
	case c.QueryBatchSeries < 1:
		return errors.New("ingester.query-batch-series must be positive")
	case c.CompactAfter < 0:
		return errors.New("ingester.compact-after must not be negative")
	}
	return nil
}
