package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// Options configure a Store.
type Options struct {
	// Path of the bbolt file, e.g. <data.dir>/store.db. Required; its
	// directory is created if missing.
	Path string
	// NoSync skips fsync on commit. Tests only: a crash loses acknowledged
	// writes.
	NoSync bool
	// BlockCacheBytes bounds the decoded cold blocks kept across reads
	// (blockcache.go); 0 keeps none.
	BlockCacheBytes int
}

// DefaultOptions returns no Path and a 64 MiB block cache.
func DefaultOptions() Options {
	return Options{BlockCacheBytes: 64 << 20}
}

// The chunk types are the ingester's (package chunks), whose Store
// interface this store implements.
type (
	Chunk        = chunks.Chunk
	SeriesChunks = chunks.SeriesChunks
	SeriesRef    = chunks.SeriesRef
	Keep         = chunks.Keep
	Known        = chunks.Known
	Sample       = chunks.Sample
	Tombstone    = chunks.Tombstone
)

var _ chunks.Store = (*Store)(nil)

// Store is the on-disk store of completed chunks of all tenants. It is safe
// for concurrent use: readers never block each other, and writes are
// serialised by bbolt's single writer transaction.
type Store struct {
	db     *bbolt.DB
	opts   Options
	reg    prometheus.Registerer
	logger *slog.Logger
	m      *metrics
	blocks *blockCache
	// retentionMu keeps ApplyRetention passes apart.
	retentionMu sync.Mutex
}

// openTimeout bounds the wait for bbolt's file lock, so that a second
// process pointed at the same file fails instead of hanging forever.
const openTimeout = 10 * time.Second

// Open opens or creates the store at opts.Path. reg and logger may be nil.
func Open(opts Options, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("store: open: Options.Path is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Path, err)
	}
	if stale, err := filepath.Glob(filepath.Join(filepath.Dir(opts.Path), backupPrefix+"*")); err == nil {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	db, err := bbolt.Open(opts.Path, 0o600, &bbolt.Options{
		Timeout: openTimeout,
		NoSync:  opts.NoSync,
		// Retention frees pages all over the file; the array freelist
		// degrades badly with fragmentation, the hashmap one does not.
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s (is another process using it?): %w", opts.Path, err)
	}
	if err := db.Update(initBuckets(logger)); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", opts.Path, err), db.Close())
	}
	if err := upgradeSeriesIndex(db, logger); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", opts.Path, err), db.Close())
	}
	s := &Store{db: db, opts: opts, reg: reg, logger: logger, m: newMetrics(opts.Path), blocks: newBlockCache(opts.BlockCacheBytes)}
	s.m.blockCache = s.blocks.requests
	if err := s.m.register(reg); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: register metrics: %w", opts.Path, err), db.Close())
	}
	logger.Info("store opened", "path", opts.Path)
	return s, nil
}

// initBuckets creates the root buckets of a new file, and upgrades a
// file of versions 1 to 5 in place to version 6: versions 1 and 2 lack the
// deletions bucket and the active index; versions 3 to 5 read as they are,
// but for series_by_labels, which upgradeSeriesIndex replaces tenant by
// tenant once the version says that this binary's layout is in use. Any
// other version is refused.
func initBuckets(logger *slog.Logger) func(tx *bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		v := meta.Get(keyFormatVersion)
		version := uint32(0)
		if len(v) == 4 {
			version = binary.BigEndian.Uint32(v)
		}
		switch {
		case v == nil || version == formatVersion:
		case version >= 1 && version <= 5:
			if version <= 2 {
				if err := startActiveIndex(tx); err != nil {
					return err
				}
			}
			if err := markUnlisted(tx); err != nil {
				return err
			}
			logger.Info("store format upgraded in place", "from", version, "to", formatVersion)
		default:
			return fmt.Errorf("unsupported format version %x, want %d (a newer Orrery wrote it?)", v, formatVersion)
		}
		if err := meta.Put(keyFormatVersion, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketTenants); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketRetired); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketDeletions)
		return err
	}
}

// upgradeSeriesIndex replaces each tenant's series_by_labels, which
// versions before 6 keyed by the encoded labels, with series_by_hash, in
// one transaction per tenant: a crash between them leaves the rest for the
// next start, which the version (already 6) keeps an older binary from.
// The keys go in sorted, so that bbolt appends to its last page instead of
// shifting a growing node on each insert (random order took 177 s for
// 400,000 series, sorted 0.6 s). A damaged series entry is logged and
// left out, as a read would pass it over, rather than fail every start.
func upgradeSeriesIndex(db *bbolt.DB, logger *slog.Logger) error {
	var pending [][]byte
	err := db.View(func(tx *bbolt.Tx) error {
		tenants := tx.Bucket(bucketTenants)
		return tenants.ForEachBucket(func(name []byte) error {
			if tenants.Bucket(name).Bucket(bucketSeriesByLabels) != nil {
				pending = append(pending, bytes.Clone(name))
			}
			return nil
		})
	})
	for _, tenant := range pending {
		if err != nil {
			break
		}
		var series, damaged int
		err = db.Update(func(tx *bbolt.Tx) error {
			tb := tx.Bucket(bucketTenants).Bucket(tenant)
			if tb.Bucket(bucketSeriesByHash) != nil {
				if err := tb.DeleteBucket(bucketSeriesByHash); err != nil {
					return err
				}
			}
			byHash, err := tb.CreateBucket(bucketSeriesByHash)
			if err != nil {
				return err
			}
			byHash.FillPercent = fillAppend
			var keys [][]byte
			if sb := tb.Bucket(bucketSeries); sb != nil {
				err := sb.ForEach(func(k, v []byte) error {
					if len(k) != idLen || v == nil {
						damaged++
						return nil
					}
					keys = append(keys, seriesHashKey(v, binary.BigEndian.Uint64(k)))
					return nil
				})
				if err != nil {
					return err
				}
			}
			slices.SortFunc(keys, bytes.Compare)
			for _, k := range keys {
				if err := byHash.Put(k, []byte{}); err != nil {
					return err
				}
			}
			series = len(keys)
			return tb.DeleteBucket(bucketSeriesByLabels)
		})
		if err == nil {
			logger.Info("store series index upgraded", "tenant", string(tenant), "series", series)
		}
		if damaged > 0 {
			logger.Error("store series index upgrade passed over damaged series entries", "tenant", string(tenant), "entries", damaged)
		}
	}
	if err != nil {
		return fmt.Errorf("upgrade series index: %w", err)
	}
	return nil
}

// markUnlisted records, for each tenant of an upgraded file whose active
// index does not start at the beginning of time, that chunks ending before
// active_from may be missing from it (unlisted_before): they were stored
// before the index existed (startActiveIndex), and retention walks every
// series until a pass has deleted them. active_from only moves forward,
// and only past chunks retention deleted, so every unlisted chunk ends
// before it.
func markUnlisted(tx *bbolt.Tx) error {
	tenants := tx.Bucket(bucketTenants)
	if tenants == nil {
		return nil
	}
	return tenants.ForEachBucket(func(name []byte) error {
		tb := tenants.Bucket(name)
		if from := readActiveFrom(tb); from != math.MinInt64 {
			return tb.Put(keyUnlistedBefore, timeKey(from))
		}
		return nil
	})
}

// startActiveIndex marks each tenant of a file from before the active
// index as indexed from the partition after its newest chunk on: the
// chunks stored before have no entries, and selects reaching them use the
// postings alone.
func startActiveIndex(tx *bbolt.Tx) error {
	tenants := tx.Bucket(bucketTenants)
	if tenants == nil {
		return nil
	}
	return tenants.ForEachBucket(func(name []byte) error {
		tb := tenants.Bucket(name)
		newest, found := int64(math.MinInt64), false
		if cb := tb.Bucket(bucketChunks); cb != nil {
			err := cb.ForEach(func(k, _ []byte) error {
				if len(k) == chunkKeyLen {
					newest, found = max(newest, chunkKeyMaxTime(k)), true
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		from := int64(math.MinInt64)
		switch {
		case !found:
		case newest > saneTime:
			from = math.MaxInt64
		default:
			from = partitionOf(max(newest, -saneTime)) + activeWidth
		}
		return setActiveFrom(tb, from)
	})
}

// Close waits for running transactions and closes the file. The Store must
// not be used afterwards.
func (s *Store) Close() error {
	s.m.unregister(s.reg)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.opts.Path, err)
	}
	return nil
}

// Tenants returns the tenants that have data, sorted.
func (s *Store) Tenants() ([]string, error) {
	out, err := s.tenants()
	if err != nil {
		return nil, fmt.Errorf("store: tenants: %w", err)
	}
	return out, nil
}

func (s *Store) tenants() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// Backup copies the file as of one read transaction (bbolt's consistent
// copy) to a temporary file beside it, ends the transaction, and calls fn
// with that copy: a slow reader of the backup holds no transaction, so
// Puts never wait for it. The copy takes the store's size on disk for as
// long as fn runs.
func (s *Store) Backup(fn func(size int64, write func(io.Writer) (int64, error)) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(s.opts.Path), backupPrefix+"*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := s.db.View(func(tx *bbolt.Tx) error { _, err := tx.WriteTo(tmp); return err }); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return fn(size, func(w io.Writer) (int64, error) { return io.CopyN(w, tmp, size) })
}

// backupPrefix names Backup's temporary copies; Open removes those a crash
// left.
const backupPrefix = "store-backup-"
