package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// Ingester owns series in memory, their WAL and their flushed chunks. It
// implements ingesterpb.IngesterServer and lifecycle.Component.
type Ingester struct {
	ingesterpb.UnimplementedIngesterServer

	cfg    Config
	dir    string
	limits Limits
	ring   RingCount
	logger *slog.Logger
	reg    prometheus.Registerer
	m      *metrics

	store chunks.Store
	wal   *wlog.WL
	// walMu makes cutting a checkpoint's segment atomic with respect to
	// pushes: a push holds it shared from WAL write to memory append, so
	// every sample in a segment before the cut is in memory at the cut.
	walMu sync.RWMutex
	// cpMu makes checkpoints take turns, and holds them off while a
	// snapshot copies the newest one and the segments after it.
	cpMu sync.Mutex

	nextRef atomic.Uint64
	// lastPush is the unix nanoseconds of the last push that appended.
	lastPush atomic.Int64
	// handingOver is set once Handover starts: later pushes and transfers
	// are refused, so nothing lands after the flush and the store that the
	// handover streams. Pushes hold pushGate for reading while they append;
	// Handover takes it for writing to wait out those in flight. A transfer
	// lasts too long to hold it: it joins transfers under pushGate, and
	// Handover waits for transfers (with a deadline) after setting the flag.
	handingOver bool
	pushGate    sync.RWMutex
	transfers   sync.WaitGroup
	// transferLocks holds a tenant's *sync.RWMutex (transferLock): held
	// for writing while a transfer's chunks are noted in memory and put
	// in the store, and for reading by a push (which may create series
	// that learn what the store holds of them, and look old samples up
	// there) and by replay's store reads. Neither may see a transfer half
	// done, or a series created meanwhile would believe the store holds
	// nothing of it (queries then skip the store for it, and pushes take
	// another value for a stored time).
	transferLocks sync.Map

	// flushMu makes flushes take turns (see flush).
	flushMu sync.Mutex

	mu    sync.RWMutex
	heads map[string]*tenantHead

	// deleted holds the tenants' tombstones, which every read applies;
	// purge wakes the retention loop after a deletion, so that the chunks
	// it covers are deleted now rather than within the hour.
	purge chan struct{}
	// deleteMu makes deletions and their reloads take turns.
	deleted  deletions
	deleteMu sync.Mutex

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns an ingester that keeps its WAL under dir and its completed
// chunks in st, and enforces each tenant's series limits from lim, its
// share computed with ring. The WAL is not opened until Start. st belongs
// to the caller, who closes it after Stop.
func New(cfg Config, dir string, st chunks.Store, lim Limits, ring RingCount, reg prometheus.Registerer, logger *slog.Logger) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	i := &Ingester{
		cfg:    cfg,
		dir:    dir,
		store:  st,
		limits: lim,
		ring:   ring,
		logger: logger,
		reg:    reg,
		m:      newMetrics(reg),
		heads:  map[string]*tenantHead{},
		stop:   make(chan struct{}),
		purge:  make(chan struct{}, 1),
	}
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orrery_ingester_memory_series", Help: "Series held in memory.",
	}, i.seriesCount)
	if err := reg.Register(newActiveSeries(i)); err != nil {
		return nil, fmt.Errorf("ingester: register metrics: %w", err)
	}
	return i, nil
}

func (i *Ingester) walDir() string { return filepath.Join(i.dir, "wal") }

// Start opens the WAL, replays it into memory and starts the flush,
// checkpoint and retention loops. It returns when the ingester serves
// everything acknowledged before the last stop or crash.
func (i *Ingester) Start(ctx context.Context) error {
	// A snapshot cut off by a crash leaves its hard links behind.
	if stale, err := filepath.Glob(filepath.Join(i.dir, "snapshot-*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	// Segments are fsynced when complete and at checkpoints; each push is
	// written to the OS before it is acknowledged (see WAL.md).
	if err := i.fillSegmentGaps(); err != nil {
		return fmt.Errorf("ingester: open wal: %w", err)
	}
	w, err := wlog.NewSize(i.logger, nil, i.walDir(), wlog.DefaultSegmentSize, compression.None)
	if err != nil {
		return fmt.Errorf("ingester: open wal: %w", err)
	}
	i.wal = w
	if err := i.loadDeletions(); err != nil {
		return errors.Join(err, w.Close())
	}
	start := time.Now()
	if err := i.replay(); err != nil {
		return errors.Join(fmt.Errorf("ingester: replay wal: %w", err), w.Close())
	}
	i.m.replayDuration.Set(time.Since(start).Seconds())
	i.logger.Info("wal replayed", "series", i.seriesCount(), "duration", time.Since(start))
	i.applyRetention()
	i.loop(i.cfg.FlushPeriod, nil, func() { i.flush(false) })
	i.loop(i.cfg.CheckpointPeriod, nil, func() { i.checkpointAndLog() })
	i.loop(time.Hour, i.purge, i.applyRetention)
	if i.cfg.CompactAfter > 0 {
		wake := make(chan struct{}, 1)
		wake <- struct{}{} // once at start, off the start's path
		i.loop(compactPeriod, wake, i.compact)
	}
	return nil
}

// Stop flushes every chunk, including the open head chunks, to the store,
// truncates the WAL behind a final checkpoint and closes the WAL.
func (i *Ingester) Stop(context.Context) error {
	close(i.stop)
	i.wg.Wait()
	i.flush(true)
	errs := []error{i.checkpoint()}
	errs = append(errs, i.wal.Close())
	return errors.Join(errs...)
}

// loop runs f every period, and whenever wake fires, until Stop.
func (i *Ingester) loop(period time.Duration, wake <-chan struct{}, f func()) {
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-i.stop:
				return
			case <-t.C:
				f()
			case <-wake:
				f()
			}
		}
	}()
}

// tombstoneGrace is how long past the retention cutoff a tombstone is
// kept: longer than any WAL kept between checkpoints, whose replay could
// bring back samples retention deleted from the store.
const tombstoneGrace = 24 * time.Hour

func (i *Ingester) newRef() uint64 { return i.nextRef.Add(1) }

// head returns the tenant's head, creating it if create is set; nil otherwise.
func (i *Ingester) head(tenantID string, create bool) *tenantHead {
	i.mu.RLock()
	h := i.heads[tenantID]
	i.mu.RUnlock()
	if h != nil || !create {
		return h
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if h = i.heads[tenantID]; h == nil {
		h = newTenantHead(tenantID)
		i.heads[tenantID] = h
	}
	return h
}

func (i *Ingester) allHeads() []*tenantHead {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]*tenantHead, 0, len(i.heads))
	for _, h := range i.heads {
		out = append(out, h)
	}
	return out
}

func (i *Ingester) seriesCount() float64 {
	n := 0
	for _, h := range i.allHeads() {
		h.mu.RLock()
		n += len(h.byRef)
		h.mu.RUnlock()
	}
	return float64(n)
}

// compactPeriod is how often complete partitions are looked for.
const compactPeriod = 10 * time.Minute

// compact moves the stored chunks of partitions that ended CompactAfter
// ago into the store's compacted form; reads do not change.
func (i *Ingester) compact() {
	before := time.Now().Add(-i.cfg.CompactAfter).UnixMilli()
	// A first pass over weeks of stored data takes minutes: Stop must
	// not wait for it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-i.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	n, err := i.store.Compact(ctx, before)
	switch {
	case ctx.Err() != nil:
		i.logger.Info("compaction stopped for shutdown; the next start goes on", "chunks", n)
		return
	case err != nil:
		i.logger.Error("compaction failed", "err", err)
	}
	if n > 0 {
		i.logger.Info("compacted stored chunks", "chunks", n)
	}
}

func (i *Ingester) applyRetention() {
	now := time.Now()
	n, err := i.store.ApplyRetention(now, func(tenantID string) time.Duration { return i.limits.For(tenantID).RetentionPeriod })
	if err != nil {
		i.logger.Error("retention failed", "err", err)
		return
	}
	if n > 0 {
		i.logger.Info("retention deleted chunks", "chunks", n)
	}
	i.deleteMu.Lock()
	defer i.deleteMu.Unlock()
	for _, tenantID := range i.deleted.tenants() {
		keep := i.limits.For(tenantID).RetentionPeriod
		if keep <= 0 {
			continue
		}
		// Memory may hold samples older than retention (a chunk not yet
		// flushed, flushes failing), and a crash replays the WAL since
		// the last checkpoint: a tombstone is kept while either may hold
		// a sample it hides.
		cutoff := now.Add(-keep - tombstoneGrace).UnixMilli()
		if h := i.head(tenantID, false); h != nil {
			if oldest, ok := h.oldestInMemory(); ok {
				cutoff = min(cutoff, oldest)
			}
		}
		if _, err := i.store.DropTombstones(tenantID, cutoff); err != nil {
			i.logger.Error("retention: drop tombstones", "tenant", tenantID, "err", err)
		}
	}
	if err := i.loadDeletions(); err != nil {
		i.logger.Error("retention: reload deletions", "err", err)
	}
}

// transferLock is tenantID's lock between transfers into the store and
// the pushes and replay reads that learn from the store (transferLocks).
func (i *Ingester) transferLock(tenantID string) *sync.RWMutex {
	if l, ok := i.transferLocks.Load(tenantID); ok {
		return l.(*sync.RWMutex)
	}
	l, _ := i.transferLocks.LoadOrStore(tenantID, &sync.RWMutex{})
	return l.(*sync.RWMutex)
}
