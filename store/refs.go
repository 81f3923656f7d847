package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"
)

// Refs returns the series Select would return that keep keeps (nil keeps
// all), each with its ID and a copy of its labels, sorted by labels, but
// none of their chunks: what a caller needs to read a large answer in
// label order a batch at a time (ChunksOf), holding the series' names
// rather than their data. The store orders series by ID, so label order
// costs this pass. known, when not nil, is asked about every series that
// matches and is kept, before its chunks are looked at (ls valid only
// during the call): a series it knows by its labels already, and so takes
// the ID of, is left out, its labels not copied and its chunks not sought,
// whether or not it has any in [mint, maxt]. The ingester knows the series
// it holds in memory, and tells from them whether the store is needed.
func (s *Store) Refs(tenant string, mint, maxt int64, keep Keep, known func(id uint64, ls labels.Labels) bool, matchers ...*labels.Matcher) ([]SeriesRef, error) {
	defer s.observeSelect("refs", time.Now())
	var out []SeriesRef
	err := s.view(tenant, func(r *reader) error {
		var skip func(id uint64) bool
		if known != nil {
			skip = func(id uint64) bool { return known(id, r.scratchLabels()) }
		}
		return r.each(mint, maxt, matchers, keep, skip, false, func(id uint64, _ []labels.Label, raw []byte, _ []Chunk) error {
			ls, err := r.copyLabels(raw)
			out = append(out, SeriesRef{ID: id, Labels: ls})
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: refs tenant %q: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b SeriesRef) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// ChunksOf reads, in one read transaction, the chunks overlapping
// [mint, maxt] of each series refs name, and returns them at the same
// index with a copy of the series' stored labels. A series not stored (or
// deleted by retention since its ref was taken) or without such a chunk
// has neither. Everything returned is the caller's.
func (s *Store) ChunksOf(tenant string, mint, maxt int64, refs []SeriesRef) ([]SeriesChunks, error) {
	defer s.observeSelect("chunks_of", time.Now())
	out := make([]SeriesChunks, len(refs))
	err := s.viewByLabels(tenant, func(r *reader, byLabels *bbolt.Bucket) error {
		for k, ref := range refs {
			id, ok := ref.ID, ref.ID != 0
			if !ok {
				var err error
				if id, ok, err = seriesID(byLabels, ref.Labels); err != nil {
					return err
				}
			}
			if !ok || mint > maxt {
				continue
			}
			raw := r.series.Get(idKey(id))
			if raw == nil {
				continue
			}
			chunks, found, err := r.overlapping(id, mint, maxt, true)
			if err != nil {
				return fmt.Errorf("series %d: %w", id, err)
			}
			if !found {
				continue
			}
			ls, err := r.copyLabels(raw)
			if err != nil {
				return fmt.Errorf("series %d: %w", id, err)
			}
			out[k] = SeriesChunks{Labels: ls, Chunks: chunks}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: chunks of tenant %q: %w", tenant, err)
	}
	return out, nil
}
