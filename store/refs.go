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
// costs this pass. known names the series the caller holds already
// (chunks.Known): by an ID taken from an earlier Refs, asked before the
// series is read, or by its labels, asked about every other series that
// matches and is kept, before its chunks are sought. Such series are left
// out, their labels not copied and their chunks not sought, whether or
// not they have any in [mint, maxt]. The ingester knows the series it
// holds in memory, and tells from them whether the store is needed.
func (s *Store) Refs(tenant string, mint, maxt int64, keep Keep, known Known, matchers ...*labels.Matcher) ([]SeriesRef, error) {
	defer s.observeSelect("refs", time.Now())
	var out []SeriesRef
	err := s.view(tenant, func(r *reader) error {
		skip := skips{byID: known.ID}
		if known.Labels != nil {
			skip.byLabels = func(id uint64) bool { return known.Labels(id, r.scratchLabels()) }
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
// index with a copy of the series' stored labels. A ref whose ID names no
// series any more (retention deleted it since the ID was learned) is
// looked up by its labels when it has them: the series may have been
// stored again, under a new ID. A series not stored, or without such a
// chunk, has neither. Everything returned is the caller's.
func (s *Store) ChunksOf(tenant string, mint, maxt int64, refs []SeriesRef) ([]SeriesChunks, error) {
	defer s.observeSelect("chunks_of", time.Now())
	out := make([]SeriesChunks, len(refs))
	err := s.viewByLabels(tenant, func(r *reader, byHash *bbolt.Bucket) error {
		for k, ref := range refs {
			id, ok := ref.ID, ref.ID != 0
			if !ok {
				var err error
				if id, ok, err = r.seriesID(byHash, ref.Labels); err != nil {
					return err
				}
			}
			if !ok || mint > maxt {
				continue
			}
			raw := r.series.Get(idKey(id))
			if raw == nil && ref.ID != 0 && !ref.Labels.IsEmpty() {
				// The ID's series was deleted since the caller learned
				// it, and may be stored again under a new one.
				var err error
				if id, ok, err = r.seriesID(byHash, ref.Labels); err != nil {
					return err
				}
				if ok {
					raw = r.series.Get(idKey(id))
				}
			}
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
