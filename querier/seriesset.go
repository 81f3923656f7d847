package querier

import (
	"bytes"
	"cmp"
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
	"github.com/orrery/orrery/runchunk"
)

// mergedSeries is one series with the distinct chunks every ingester
// returned for it, in time order.
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
// timestamp: different chunks of replicas (cut at other times, one missing
// samples) and in-memory/stored copies overlap (chunkMerge).
func (s *mergedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	hide, _ := it.(*tsdb.DeletedIterator)
	if hide != nil {
		it = hide.Iter
	}
	if len(s.chunks) == 1 {
		it = s.chunks[0].Iterator(it)
	} else {
		it = newChunkMerge(it, s.chunks)
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

// newMergedSeries is one series from the chunks every ingester sent for
// it, each distinct chunk decoded once; it shows no sample before mint.
// It reorders chunks.
func newMergedSeries(lset labels.Labels, chunks []*ingesterpb.Chunk, mint int64) (*mergedSeries, error) {
	distinct := distinctChunks(chunks)
	ms := &mergedSeries{lset: lset, mint: mint, chunks: make([]chunkenc.Chunk, 0, len(distinct))}
	for _, wc := range distinct {
		c, err := runchunk.FromData(chunkenc.Encoding(wc.Encoding), wc.Data)
		if err != nil {
			return nil, fmt.Errorf("querier: decode chunk of %s: %w", lset, err)
		}
		ms.chunks = append(ms.chunks, c)
	}
	return ms, nil
}

// distinctChunks sorts one series' chunks by time and keeps one of each set
// of identical ones (same time range, encoding and bytes): the copies
// replicas, or an ingester's memory and store, send of the same chunk. Only
// the chunks left are merged sample by sample. It reorders cs in place.
func distinctChunks(cs []*ingesterpb.Chunk) []*ingesterpb.Chunk {
	slices.SortFunc(cs, func(a, b *ingesterpb.Chunk) int {
		return cmp.Or(cmp.Compare(a.MinTimeMs, b.MinTimeMs), cmp.Compare(a.MaxTimeMs, b.MaxTimeMs),
			cmp.Compare(a.Encoding, b.Encoding), bytes.Compare(a.Data, b.Data))
	})
	return slices.CompactFunc(cs, func(a, b *ingesterpb.Chunk) bool {
		return a.MinTimeMs == b.MinTimeMs && a.MaxTimeMs == b.MaxTimeMs && a.Encoding == b.Encoding && bytes.Equal(a.Data, b.Data)
	})
}

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
