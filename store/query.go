package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"
)

// Select returns the series of tenant that match all matchers and have a
// chunk overlapping [mint, maxt] (inclusive), each with only those chunks in
// time order, sorted by labels. The result is the caller's: nothing in it
// refers to bbolt memory.
func (s *Store) Select(tenant string, mint, maxt int64, matchers ...*labels.Matcher) ([]SeriesChunks, error) {
	defer s.observeSelect("select", time.Now())
	var out []SeriesChunks
	err := s.view(tenant, func(r *reader) error {
		return r.each(mint, maxt, matchers, nil, skips{}, true, func(_ uint64, _ []labels.Label, raw []byte, chunks []Chunk) error {
			ls, err := r.copyLabels(raw)
			out = append(out, SeriesChunks{Labels: ls, Chunks: chunks})
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: select tenant %q: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b SeriesChunks) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// Series returns the labels of the series Select would return that keep
// keeps (nil keeps all), sorted.
func (s *Store) Series(tenant string, mint, maxt int64, keep Keep, matchers ...*labels.Matcher) ([]labels.Labels, error) {
	defer s.observeSelect("series", time.Now())
	var out []labels.Labels
	err := s.view(tenant, func(r *reader) error {
		return r.each(mint, maxt, matchers, keep, skips{}, false, func(_ uint64, _ []labels.Label, raw []byte, _ []Chunk) error {
			ls, err := r.copyLabels(raw)
			out = append(out, ls)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: series tenant %q: %w", tenant, err)
	}
	slices.SortFunc(out, labels.Compare)
	return out, nil
}

// LabelNames returns the sorted, unique label names of the series Select
// would return; without matchers, of all series with data in range.
func (s *Store) LabelNames(tenant string, mint, maxt int64, matchers ...*labels.Matcher) ([]string, error) {
	defer s.observeSelect("label_names", time.Now())
	set := map[string]struct{}{}
	err := s.view(tenant, func(r *reader) error {
		return r.each(mint, maxt, matchers, nil, skips{}, false, func(_ uint64, ls []labels.Label, _ []byte, _ []Chunk) error {
			for _, l := range ls {
				addClone(set, l.Name)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: label names tenant %q: %w", tenant, err)
	}
	return sortedKeys(set), nil
}

// LabelValues returns the sorted, unique, non-empty values of label name of
// the series Select would return.
func (s *Store) LabelValues(tenant, name string, mint, maxt int64, matchers ...*labels.Matcher) ([]string, error) {
	defer s.observeSelect("label_values", time.Now())
	// Series without the label contribute nothing, so let its postings
	// narrow the candidates. != "" needs no regexp compilation.
	hasName, err := labels.NewMatcher(labels.MatchNotEqual, name, "")
	if err != nil {
		return nil, fmt.Errorf("store: label values tenant %q: %w", tenant, err)
	}
	all := append(slices.Clip(matchers), hasName)
	set := map[string]struct{}{}
	err = s.view(tenant, func(r *reader) error {
		return r.each(mint, maxt, all, nil, skips{}, false, func(_ uint64, ls []labels.Label, _ []byte, _ []Chunk) error {
			addClone(set, getLabel(ls, name))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: label values tenant %q: %w", tenant, err)
	}
	return sortedKeys(set), nil
}

// addClone adds s, which may point into bbolt memory, to set, copying it
// only the first time.
func addClone(set map[string]struct{}, s string) {
	if _, ok := set[s]; !ok {
		set[strings.Clone(s)] = struct{}{}
	}
}

func sortedKeys(set map[string]struct{}) []string {
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

func (s *Store) observeSelect(method string, start time.Time) {
	s.m.selectDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// view runs fn in a read transaction on tenant's buckets; an unknown tenant
// runs nothing, so it reads as empty.
func (s *Store) view(tenant string, fn func(r *reader) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		r, err := openReader(tx, tenant, s.coldEnv(tenant))
		if err != nil || r == nil {
			return err
		}
		return fn(r)
	})
}

// selectBatchBytes ends a SelectBatches batch early once its chunks hold
// this many bytes: series with long histories would otherwise make a batch
// of batchSeries arbitrarily large.
const selectBatchBytes = 16 << 20

// SelectBatches calls fn with the series Select would return that keep
// keeps (nil keeps all; a rejected series' chunks are not read), at most
// batchSeries (or about selectBatchBytes of chunks, but at least one
// series) at a time, so that a caller streaming a whole tenant (a
// handover) holds one batch in memory, not the answer. Each batch is read in its own read transaction, in series-ID
// order, and sorted by labels within itself only: a long stream never pins
// one bbolt transaction (which would block the file's growth, and so
// writers, for its whole length). A series written during the stream may be
// missed, and one deleted by retention is skipped; fn owns each batch.
// fn's error ends the stream and is returned unwrapped.
func (s *Store) SelectBatches(tenant string, mint, maxt int64, batchSeries int, keep Keep, fn func([]SeriesChunks) error, matchers ...*labels.Matcher) error {
	if batchSeries < 1 {
		return fmt.Errorf("store: select batches: batch size %d is not positive", batchSeries)
	}
	var (
		ids  []uint64 // candidates, when the matchers narrow them by postings
		all  bool
		next uint64 // the first series ID of the next batch, when all
		done = true // an unknown tenant runs no view: nothing to select
	)
	err := s.view(tenant, func(r *reader) error {
		var err error
		ids, all, err = r.candidates(matchers)
		done = !all && len(ids) == 0
		return err
	})
	if err != nil {
		return fmt.Errorf("store: select tenant %q: %w", tenant, err)
	}
	for !done {
		var batch []SeriesChunks
		bytes := 0
		full := func() bool { return len(batch) >= batchSeries || bytes >= selectBatchBytes }
		// A tenant deleted since the last batch runs no view: done.
		done = true
		err := s.view(tenant, func(r *reader) error {
			add := func(id uint64, raw []byte) error {
				ls, chunks, ok, err := r.selectOne(id, raw, mint, maxt, matchers, keep)
				if ok {
					batch = append(batch, SeriesChunks{Labels: ls, Chunks: chunks})
					for _, c := range chunks {
						bytes += len(c.Data)
					}
				}
				return err
			}
			if !all {
				for len(ids) > 0 && !full() {
					id := ids[0]
					ids = ids[1:]
					if raw := r.series.Get(idKey(id)); raw != nil {
						if err := add(id, raw); err != nil {
							return err
						}
					}
				}
				done = len(ids) == 0
				return nil
			}
			c := r.series.Cursor()
			k, v := c.Seek(idKey(next))
			for ; k != nil && !full(); k, v = c.Next() {
				if len(k) != idLen {
					return fmt.Errorf("series key of %d bytes: %w", len(k), errCorrupt)
				}
				id := binary.BigEndian.Uint64(k)
				next = id + 1
				if err := add(id, v); err != nil {
					return err
				}
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: select tenant %q: %w", tenant, err)
		}
		if len(batch) > 0 {
			slices.SortFunc(batch, func(a, b SeriesChunks) int { return labels.Compare(a.Labels, b.Labels) })
			if err := fn(batch); err != nil {
				return err
			}
		}
	}
	return nil
}
