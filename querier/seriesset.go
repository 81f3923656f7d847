package querier

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// mergedSeries is one series with the chunks every ingester returned for it.
type mergedSeries struct {
	lset   labels.Labels
	chunks []chunkenc.Chunk
	// mint hides older samples. Ingesters send whole chunks, and under
	// max_query_lookback a chunk can reach back further than the query may
	// read; PromQL would read all of it. math.MinInt64 hides nothing.
	mint int64
}

func (s *mergedSeries) Labels() labels.Labels { return s.lset }

// Iterator merges the chunks by timestamp and keeps one sample per
// timestamp: replicas and in-memory/stored copies overlap.
func (s *mergedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	hide, _ := it.(*tsdb.DeletedIterator)
	if hide != nil {
		it = hide.Iter
	}
	if len(s.chunks) == 1 {
		it = s.chunks[0].Iterator(it)
	} else {
		iterables := make([]chunkenc.Iterable, len(s.chunks))
		for k, c := range s.chunks {
			iterables[k] = c
		}
		it = storage.ChainSampleIteratorFromIterables(it, iterables)
	}
	if s.mint == math.MinInt64 {
		return it
	}
	// Upstream's iterator over deleted ranges hides everything before mint.
	if hide == nil {
		hide = &tsdb.DeletedIterator{}
	}
	hide.Iter, hide.Intervals = it, tombstones.Intervals{{Mint: math.MinInt64, Maxt: s.mint - 1}}
	return hide
}

// newChunkSeriesSet decodes and groups wire series by labels; the series
// show no sample before mint.
func newChunkSeriesSet(wire []*ingesterpb.ChunkSeries, mint int64) (*seriesSet, error) {
	var b labels.ScratchBuilder
	all := make([]*mergedSeries, 0, len(wire))
	for _, ws := range wire {
		ms := &mergedSeries{lset: ingesterpb.ToLabels(&b, ws.Labels), mint: mint}
		for _, wc := range ws.Chunks {
			c, err := chunkenc.FromData(chunkenc.Encoding(wc.Encoding), wc.Data)
			if err != nil {
				return nil, fmt.Errorf("querier: decode chunk of %s: %w", ms.lset, err)
			}
			ms.chunks = append(ms.chunks, c)
		}
		all = append(all, ms)
	}
	slices.SortStableFunc(all, func(a, b *mergedSeries) int { return labels.Compare(a.lset, b.lset) })
	out := all[:0]
	for _, s := range all {
		if n := len(out); n > 0 && labels.Equal(out[n-1].lset, s.lset) {
			out[n-1].chunks = append(out[n-1].chunks, s.chunks...)
			continue
		}
		out = append(out, s)
	}
	return &seriesSet{series: out, idx: -1}, nil
}

type seriesSet struct {
	series []*mergedSeries
	idx    int
	warns  annotations.Annotations
}

func (s *seriesSet) Next() bool                        { s.idx++; return s.idx < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.idx] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return s.warns }

// labelsSeriesSet serves the series API, which needs labels only.
type labelsSeriesSet struct {
	sets  []labels.Labels
	idx   int
	warns annotations.Annotations
}

func (s *labelsSeriesSet) Next() bool { s.idx++; return s.idx < len(s.sets) }
func (s *labelsSeriesSet) At() storage.Series {
	return &storage.SeriesEntry{Lset: s.sets[s.idx], SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator { return chunkenc.NewNopIterator() }}
}
func (s *labelsSeriesSet) Err() error                        { return nil }
func (s *labelsSeriesSet) Warnings() annotations.Annotations { return s.warns }

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
