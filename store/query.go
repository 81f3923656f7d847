package store

import (
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
		return r.each(mint, maxt, matchers, true, func(_ []labels.Label, raw []byte, chunks []Chunk) error {
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

// Series returns the labels of the series Select would return, sorted.
func (s *Store) Series(tenant string, mint, maxt int64, matchers ...*labels.Matcher) ([]labels.Labels, error) {
	defer s.observeSelect("series", time.Now())
	var out []labels.Labels
	err := s.view(tenant, func(r *reader) error {
		return r.each(mint, maxt, matchers, false, func(_ []labels.Label, raw []byte, _ []Chunk) error {
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
		return r.each(mint, maxt, matchers, false, func(ls []labels.Label, _ []byte, _ []Chunk) error {
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
		return r.each(mint, maxt, all, false, func(ls []labels.Label, _ []byte, _ []Chunk) error {
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
		r, err := openReader(tx, tenant)
		if err != nil || r == nil {
			return err
		}
		return fn(r)
	})
}
