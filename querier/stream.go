package querier

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// ingesterStream is one ingester's QueryStream answer being read. An
// ingester sends its series sorted by labels, each once (ingester
// QueryStream), so streams merge by labels as they arrive and only their
// current messages are held.
type ingesterStream struct {
	id      string // the ingester, for errors
	stream  grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse]
	account *ingesterFetch
	// msg is what is left of the current message; msg[0], with labels
	// lset, is the current series.
	msg  []*ingesterpb.ChunkSeries
	lset labels.Labels
	b    labels.ScratchBuilder
	// only is the request's series_hashes: the series an ingester that
	// predates the field sends beyond them are dropped here.
	only []uint64
}

// openStream starts reading an ingester's answer: its first series is
// current when it returns, unless the answer is empty (done).
func openStream(ctx context.Context, c ingesterpb.IngesterClient, id string, req *ingesterpb.QueryRequest, account *ingesterFetch) (st *ingesterStream, err error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return nil, err
	}
	st = &ingesterStream{id: id, stream: stream, account: account, only: req.SeriesHashes}
	_, err = st.load(ctx)
	return st, err
}

// done reports whether the stream has no current series.
func (s *ingesterStream) done() bool { return len(s.msg) == 0 }

// load makes the next series current, receiving a message when the
// current one is used up; false at the end of the stream. Every message
// is accounted against the query's limits as it arrives, so a query over
// them stops here. A series not after the previous one is an error: the
// merge would return it twice or out of order.
func (s *ingesterStream) load(ctx context.Context) (bool, error) {
	for len(s.msg) == 0 {
		resp, err := s.stream.Recv()
		if err != nil {
			return false, ignoreEOF(err)
		}
		series := s.dropUnasked(resp.Series)
		if err := s.account.addChunks(series); err != nil {
			return false, err
		}
		recordFetched(ctx, series)
		s.msg = series
	}
	ls, err := seriesLabels(&s.b, s.msg[0])
	if err != nil {
		s.msg = nil
		return false, err
	}
	if !s.lset.IsEmpty() && labels.Compare(ls, s.lset) <= 0 {
		s.msg = nil
		return false, fmt.Errorf("series %s after %s: the answer is not sorted by labels", ls, s.lset)
	}
	s.lset = ls
	return true, nil
}

// dropUnasked removes from series those the request did not name, if it
// named any (an ingester that predates series_hashes sends every series),
// before they count against limits or are merged. Pushdown merges by hash
// the series whose replicas differ, and one sent unasked would be counted
// a second time, beside the replica that evaluated it. A series whose
// labels do not decode is kept, for reading it to report.
func (s *ingesterStream) dropUnasked(series []*ingesterpb.ChunkSeries) []*ingesterpb.ChunkSeries {
	if len(s.only) == 0 {
		return series
	}
	return slices.DeleteFunc(series, func(cs *ingesterpb.ChunkSeries) bool {
		ls, err := seriesLabels(&s.b, cs)
		if err != nil {
			return false
		}
		_, found := slices.BinarySearch(s.only, labels.StableHash(ls))
		return !found
	})
}

// seriesLabels are a streamed series' labels, packed or as pairs (an
// ingester that predates packed labels sends pairs). They must be what an
// ingester holds: names sorted, unique and not empty, names and values
// UTF-8. The merge compares label sets in order, and Prometheus's label
// sets find a name by that order, so a set out of order would answer its
// own name wrongly; packed labels are bytes, which protobuf does not check
// for UTF-8 as it checks the pairs' strings.
func seriesLabels(b *labels.ScratchBuilder, cs *ingesterpb.ChunkSeries) (labels.Labels, error) {
	var ls labels.Labels
	if len(cs.PackedLabels) == 0 {
		ls = ingesterpb.ToLabels(b, cs.Labels)
	} else {
		var err error
		if ls, err = ingesterpb.DecodeLabels(b, cs.PackedLabels); err != nil {
			return labels.EmptyLabels(), fmt.Errorf("series labels: %w", err)
		}
	}
	var prev string
	var err error
	first := true
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case l.Name == "" || (!first && l.Name <= prev):
			err = fmt.Errorf("series %s: label names not sorted, unique and non-empty", ls)
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			err = fmt.Errorf("series %q: labels not UTF-8", ls.String())
		}
		prev, first = l.Name, false
	})
	if err != nil {
		return labels.EmptyLabels(), err
	}
	return ls, nil
}

// next drops the current series and loads the next. Its error, other
// than a query limit's, names the ingester.
func (s *ingesterStream) next(ctx context.Context) (bool, error) {
	s.msg[0] = nil
	s.msg = s.msg[1:]
	more, err := s.load(ctx)
	if err != nil && !isLimitError(err) {
		err = fmt.Errorf("ingester %s: %w", s.id, apierr.FromGRPC(err))
	}
	return more, err
}

// skipTo drops the series before from, for a spare that replaces a
// stream whose series before from were already merged (from is the one
// being merged).
func (s *ingesterStream) skipTo(ctx context.Context, from labels.Labels) (bool, error) {
	for !s.done() && labels.Compare(s.lset, from) < 0 {
		if ok, err := s.next(ctx); !ok || err != nil {
			return false, err
		}
	}
	return !s.done(), nil
}

// streamHeap orders streams by their current series' labels.
type streamHeap []*ingesterStream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return labels.Compare(h[i].lset, h[j].lset) < 0 }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*ingesterStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// streamSeriesSet merges ingesters' streams into one series set as it is
// iterated: each Next takes the smallest current series of all streams,
// with the same series of the others, and reads on only those streams. A
// stream that fails midway is replaced by a spare ingester, whose answer
// is read past the series already returned; with no spare left the set
// fails, as a read with too many failed ingesters does.
type streamSeriesSet struct {
	ctx   context.Context
	h     streamHeap
	mint  int64
	spare func() (*ingesterStream, bool, error)
	stop  func()

	cur   *mergedSeries
	group []*ingesterpb.Chunk
	err   error
	warns annotations.Annotations
}

// newStreamSeriesSet merges streams, each just opened; stop ends them all
// and is called when the set ends.
func newStreamSeriesSet(ctx context.Context, streams []*ingesterStream, mint int64, warns annotations.Annotations, spare func() (*ingesterStream, bool, error), stop func()) *streamSeriesSet {
	s := &streamSeriesSet{ctx: ctx, mint: mint, spare: spare, stop: stop, warns: warns}
	for _, st := range streams {
		if !st.done() {
			s.h = append(s.h, st)
		}
	}
	heap.Init(&s.h)
	return s
}

func (s *streamSeriesSet) Next() bool {
	if s.err != nil || len(s.h) == 0 {
		s.end(nil)
		return false
	}
	lset := s.h[0].lset
	s.group = s.group[:0]
	for len(s.h) > 0 && labels.Equal(s.h[0].lset, lset) {
		st := s.h[0]
		s.group = append(s.group, st.msg[0].Chunks...)
		more, err := st.next(s.ctx)
		switch {
		case err != nil:
			heap.Pop(&s.h)
			if err := s.replace(err, lset); err != nil {
				s.end(err)
				return false
			}
		case more:
			heap.Fix(&s.h, 0)
		default:
			heap.Pop(&s.h)
		}
	}
	ms, err := newMergedSeries(lset, s.group, s.mint)
	clear(s.group)
	if err != nil {
		s.end(err)
		return false
	}
	s.cur = ms
	return true
}

// replace puts a spare in the place of a stream that failed with err,
// read up to lset, the series being merged, and returns the error that
// ends the set when it cannot: a query limit, the query's end, or no spare
// left. The spare's copy of lset is merged too. Series the spare has
// before lset were in neither the failed stream (which had reached lset)
// nor any other (lset is the smallest they had): ones created after they
// read, or written to the spare alone. They are dropped; kept, they would
// end the group before its other copies and come out of order.
func (s *streamSeriesSet) replace(err error, lset labels.Labels) error {
	for {
		if isLimitError(err) {
			return err
		}
		if s.ctx.Err() != nil {
			return fmt.Errorf("querier: %w", s.ctx.Err())
		}
		sp, ok, serr := s.spare()
		if !ok {
			if serr != nil {
				return serr
			}
			return fmt.Errorf("%w (no spare ingester is left to read in its place)", err)
		}
		more, serr := sp.skipTo(s.ctx, lset)
		if serr == nil {
			if more {
				heap.Push(&s.h, sp)
			}
			return nil
		}
		err = serr
	}
}

// end records err, if any, and ends the streams.
func (s *streamSeriesSet) end(err error) {
	if s.err == nil {
		s.err = err
	}
	s.h = nil
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *streamSeriesSet) At() storage.Series                { return s.cur }
func (s *streamSeriesSet) Err() error                        { return s.err }
func (s *streamSeriesSet) Warnings() annotations.Annotations { return s.warns }
