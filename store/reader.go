package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"
)

// reader reads one tenant's buckets within a read transaction.
type reader struct {
	series, postings, chunks *bbolt.Bucket
	maxSpan                  int64
	chunkCursor              *bbolt.Cursor
	// active is the active index (active.go); nil in a tenant stored
	// before it, and used for partitions from activeFrom on.
	active     *bbolt.Bucket
	activeFrom int64
	// cold reads the tenant's cold partitions (cold.go); nil without any.
	cold *coldReader

	// Scratch space reused across series, to keep allocations per query
	// rather than per candidate.
	matchLabels, copyPairs []labels.Label
	builder                labels.ScratchBuilder
	// keepBuilder and keepLabels hold the labels a Keep sees, rebuilt in
	// place for each candidate.
	keepBuilder labels.ScratchBuilder
	keepLabels  labels.Labels
	// visited counts the series whose labels were read, what a select
	// costs per series of the tenant.
	visited int
}

// openReader returns nil, nil for a tenant without data; cold is what its
// reads of cold partitions share with the store.
func openReader(tx *bbolt.Tx, tenant string, cold coldEnv) (*reader, error) {
	tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
	if tb == nil {
		return nil, nil
	}
	r := &reader{
		series:      tb.Bucket(bucketSeries),
		postings:    tb.Bucket(bucketPostings),
		chunks:      tb.Bucket(bucketChunks),
		maxSpan:     readMaxSpan(tb),
		active:      tb.Bucket(bucketActive),
		activeFrom:  readActiveFrom(tb),
		builder:     labels.NewScratchBuilder(0),
		keepBuilder: labels.NewScratchBuilder(0),
		cold:        openColdReader(tb, cold),
	}
	if r.series == nil || r.postings == nil || r.chunks == nil {
		return nil, fmt.Errorf("tenant bucket without its sub-buckets: %w", errCorrupt)
	}
	r.chunkCursor = r.chunks.Cursor()
	return r, nil
}

// selectFn receives one selected series and its ID. ls and raw point into
// bbolt memory and are valid only during the call; chunks, collected only
// when asked for, are the caller's.
type selectFn func(id uint64, ls []labels.Label, raw []byte, chunks []Chunk) error

// skips are the series a caller of each already has (Refs' Known): byID
// is asked before a candidate series is read, byLabels about each series
// matched and kept, before its chunks are looked at (r.matchLabels holds
// it); a series either answers true for is passed over. Either may be nil.
type skips struct {
	byID, byLabels func(id uint64) bool
}

// each calls fn for every series that matches all matchers, is kept by
// keep (nil keeps all), is not skipped, and has a chunk overlapping
// [mint, maxt].
func (r *reader) each(mint, maxt int64, matchers []*labels.Matcher, keep Keep, skip skips, withChunks bool, fn selectFn) error {
	if mint > maxt {
		return nil
	}
	// The active index narrows the candidates to the series with chunks
	// in the range's partitions, whatever the tenant's history; it may
	// list a few whose chunks (or the series) retention has deleted since.
	// When many of the series ever created are active, the postings
	// alone are cheaper: the index pays where series churn.
	active, onlyActive, err := r.activeIDs(mint, maxt, int(min(r.series.Sequence()/activeShareMax, math.MaxInt32)))
	if err != nil {
		return err
	}
	var (
		ids []uint64
		all bool
	)
	if onlyActive {
		if ids, err = r.activeCandidates(active, matchers); err != nil {
			return err
		}
	} else if ids, all, err = r.candidates(matchers); err != nil {
		return err
	}
	visit := func(id uint64, raw []byte) error {
		r.visited++
		var err error
		r.matchLabels, err = decodeLabels(r.matchLabels[:0], yoloString(raw))
		if err != nil {
			return fmt.Errorf("series %d: %w", id, err)
		}
		if !matchesAll(r.matchLabels, matchers) || !r.keeps(keep) || skip.byLabels != nil && skip.byLabels(id) {
			return nil
		}
		chunks, found, err := r.overlapping(id, mint, maxt, withChunks)
		if err != nil || !found {
			return err
		}
		return fn(id, r.matchLabels, raw, chunks)
	}
	if all {
		return r.series.ForEach(func(k, v []byte) error {
			if len(k) != idLen {
				return fmt.Errorf("series key of %d bytes: %w", len(k), errCorrupt)
			}
			id := binary.BigEndian.Uint64(k)
			if skip.byID != nil && skip.byID(id) {
				return nil
			}
			return visit(id, v)
		})
	}
	for _, id := range ids {
		if skip.byID != nil && skip.byID(id) {
			continue
		}
		raw := r.series.Get(idKey(id))
		if raw == nil {
			if onlyActive {
				continue // listed, since deleted
			}
			return fmt.Errorf("postings name missing series %d: %w", id, errCorrupt)
		}
		if err := visit(id, raw); err != nil {
			return err
		}
	}
	return nil
}

// keeps asks keep about the series in r.matchLabels, before any of its
// chunks is read.
func (r *reader) keeps(keep Keep) bool {
	if keep == nil {
		return true
	}
	return keep(r.scratchLabels())
}

// scratchLabels returns the series in r.matchLabels as Labels rebuilt in
// place: valid until the next candidate.
func (r *reader) scratchLabels() labels.Labels {
	r.keepBuilder.Reset()
	for _, l := range r.matchLabels {
		r.keepBuilder.Add(l.Name, l.Value)
	}
	r.keepBuilder.Overwrite(&r.keepLabels)
	return r.keepLabels
}

func matchesAll(ls []labels.Label, matchers []*labels.Matcher) bool {
	for _, m := range matchers {
		if !m.Matches(getLabel(ls, m.Name)) {
			return false
		}
	}
	return true
}

// candidates returns the sorted IDs of series that may match: the
// intersection of the postings of matchers that reject series lacking their
// label. Matchers that accept such series cannot use postings; if all are
// like that, all is set and every series is a candidate.
func (r *reader) candidates(matchers []*labels.Matcher) (ids []uint64, all bool, err error) {
	all = true
	// Equality postings are the cheapest to read and usually the smallest,
	// so they go first and can end the search early.
	ordered := make([]*labels.Matcher, 0, len(matchers))
	for _, m := range matchers {
		if m.Type == labels.MatchEqual {
			ordered = append(ordered, m)
		}
	}
	for _, m := range matchers {
		if m.Type != labels.MatchEqual {
			ordered = append(ordered, m)
		}
	}
	for _, m := range ordered {
		if m.Matches("") {
			continue
		}
		p, err := r.postingsFor(m)
		if err != nil {
			return nil, false, err
		}
		if all {
			ids, all = p, false
		} else {
			ids = intersect(ids, p)
		}
		if len(ids) == 0 {
			return nil, false, nil
		}
	}
	return ids, all, nil
}

// activeCandidates narrows the active series by the matchers that reject
// series without their label. An equality uses its postings when they are
// no longer than the candidates, else looks each candidate's posting up,
// so that the cost follows the active series, not every series that ever
// had the label. Other matchers scan their label's postings only while
// many candidates are left; the rest are checked on the labels (each's
// visit), which every candidate passes through anyway.
func (r *reader) activeCandidates(ids []uint64, matchers []*labels.Matcher) ([]uint64, error) {
	for _, m := range matchers {
		if m.Type != labels.MatchEqual || m.Matches("") || len(ids) == 0 {
			continue
		}
		p, complete, err := r.postingsEqualUpTo(m.Name, m.Value, len(ids))
		if err != nil {
			return nil, err
		}
		if complete {
			ids = intersect(ids, p)
			continue
		}
		probe := newIDProbe(idSet{r.postings, postingValuePrefix(m.Name, m.Value)})
		kept := ids[:0]
		for _, id := range ids {
			has, err := probe.has(id)
			if err != nil {
				return nil, err
			}
			if has {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	for _, m := range matchers {
		if m.Type == labels.MatchEqual || m.Matches("") || len(ids) <= activeVisitMax {
			continue
		}
		p, err := r.postingsFor(m)
		if err != nil {
			return nil, err
		}
		ids = intersect(ids, p)
	}
	return ids, nil
}

// activeShareMax: the active index is used when the series listed for the
// range are at most one in activeShareMax of those ever created.
const activeShareMax = 4

// activeVisitMax is how many active candidates are checked on their labels
// rather than narrowed first by a scan of a regexp's postings.
const activeVisitMax = 256

// postingsEqualUpTo returns the IDs of series with name=value, in ID
// order, unless there are more than limit (complete is false).
func (r *reader) postingsEqualUpTo(name, value string, limit int) (ids []uint64, complete bool, err error) {
	ids, complete, err = idSet{r.postings, postingValuePrefix(name, value)}.appendTo(nil, limit)
	if !complete {
		ids = nil
	}
	return ids, complete, err
}

// postingsFor returns the sorted IDs of series whose label m.Name has a
// value m matches.
func (r *reader) postingsFor(m *labels.Matcher) ([]uint64, error) {
	if m.Type == labels.MatchEqual {
		return r.postingsEqual(m.Name, m.Value, nil)
	}
	// A regexp that is an alternation of literals is a few equality
	// lookups rather than a scan of every value of the label.
	if set := m.SetMatches(); m.Type == labels.MatchRegexp && len(set) > 0 {
		var ids []uint64
		for _, v := range set {
			var err error
			if ids, err = r.postingsEqual(m.Name, v, ids); err != nil {
				return nil, err
			}
		}
		// Compact guards against a set that lists a value twice.
		slices.Sort(ids)
		return slices.Compact(ids), nil
	}
	return r.postingsScan(m)
}

// postingsEqual appends the IDs of series with name=value to dst, in ID
// order.
func (r *reader) postingsEqual(name, value string, dst []uint64) ([]uint64, error) {
	dst, _, err := idSet{r.postings, postingValuePrefix(name, value)}.appendTo(dst, -1)
	return dst, err
}

// postingsScan walks all values of m.Name, from the literal prefix a regexp
// requires if it has one, testing each distinct value once.
func (r *reader) postingsScan(m *labels.Matcher) ([]uint64, error) {
	namePrefix := postingNamePrefix(m.Name)
	seek := namePrefix
	if m.Type == labels.MatchRegexp {
		seek = append(slices.Clip(namePrefix), m.Prefix()...)
	}
	var (
		ids               []uint64
		last              []byte
		haveLast, matched bool
	)
	c := r.postings.Cursor()
	for k, v := c.Seek(seek); k != nil && bytes.HasPrefix(k, seek); k, v = c.Next() {
		value, ok := postingValue(k, namePrefix)
		if !ok {
			return nil, fmt.Errorf("postings key %q: %w", k, errCorrupt)
		}
		if !haveLast || !bytes.Equal(value, last) {
			matched, last, haveLast = m.Matches(yoloString(value)), value, true
		}
		if matched {
			var err error
			if ids, err = decodeSegment(ids, k, v); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// intersect returns the IDs in both sorted lists, reusing a's storage.
func intersect(a, b []uint64) []uint64 {
	out := a[:0]
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// overlapping reports whether series id has a chunk overlapping
// [mint, maxt] and, if collect is set, returns copies of all of them ordered
// by MinTime. Chunks are keyed by MaxTime, so the scan starts at mint and
// stops once MaxTime exceeds maxt plus the longest chunk span stored.
func (r *reader) overlapping(id uint64, mint, maxt int64, collect bool) ([]Chunk, bool, error) {
	limit := maxt + r.maxSpan
	if maxt > math.MaxInt64-r.maxSpan {
		limit = math.MaxInt64
	}
	var out []Chunk
	var hotEnds []int64 // MaxTimes in the chunks bucket: a block's chunk under one is older
	for k, v := r.chunkCursor.Seek(chunkKey(id, mint)); k != nil; k, v = r.chunkCursor.Next() {
		if len(k) != chunkKeyLen {
			return nil, false, fmt.Errorf("chunk key of %d bytes: %w", len(k), errCorrupt)
		}
		if binary.BigEndian.Uint64(k) != id || chunkKeyMaxTime(k) > limit {
			break
		}
		minTime, err := chunkValueMinTime(v)
		if err != nil {
			return nil, false, fmt.Errorf("series %d: %w", id, err)
		}
		hotEnds = append(hotEnds, chunkKeyMaxTime(k))
		if minTime > maxt {
			continue
		}
		if !collect {
			return nil, true, nil
		}
		c, err := decodeChunk(k, v)
		if err != nil {
			return nil, false, fmt.Errorf("series %d: %w", id, err)
		}
		out = append(out, c)
	}
	if r.cold != nil { // without collect, nothing was found above
		var err error
		r.cold.entries(id, mint, limit, func(p int64, first uint64, series *blockSeries) bool {
			// A run is handed on whole where it can be: its reader
			// decodes each sample once (runchunk), where rebuilding its
			// XOR chunks would encode them to be decoded again.
			if c, ok := r.cold.wholeRun(series, mint, maxt, hotEnds); ok {
				out = append(out, c)
				return collect
			}
			return r.cold.eachRecord(p, first, series, mint, limit, func(rec coldRecord) bool {
				minTime, _ := chunkValueMinTime(rec.value) // checked by parseColdBlock, or rebuilt
				// A chunk put under a compacted chunk's key holds the merge
				// of both (putChunk): it answers alone, as in a store that
				// never compacted.
				if minTime > maxt || slices.Contains(hotEnds, rec.maxTime) {
					return true
				}
				var c Chunk
				if c, err = decodeChunk(chunkKey(id, rec.maxTime), rec.value); err != nil {
					return false
				}
				out = append(out, c)
				return collect
			})
		})
		if err != nil {
			return nil, false, fmt.Errorf("series %d: %w", id, err)
		}
		if !collect {
			return nil, len(out) > 0, nil
		}
	}
	// Overlapping chunks, e.g. a head chunk flushed at shutdown and its
	// completed successor, can make MaxTime order differ from MinTime order.
	slices.SortStableFunc(out, func(a, b Chunk) int { return cmp.Compare(a.MinTime, b.MinTime) })
	return out, len(out) > 0, nil
}

// copyLabels decodes raw into Labels that own their memory.
func (r *reader) copyLabels(raw []byte) (labels.Labels, error) {
	var err error
	r.copyPairs, err = decodeLabels(r.copyPairs[:0], string(raw))
	if err != nil {
		return labels.EmptyLabels(), err
	}
	return buildLabels(&r.builder, r.copyPairs), nil
}

// selectOne returns series id's labels (a copy) and its chunks overlapping
// [mint, maxt] if it matches all matchers, keep keeps it and it has such a
// chunk.
func (r *reader) selectOne(id uint64, raw []byte, mint, maxt int64, matchers []*labels.Matcher, keep Keep) (labels.Labels, []Chunk, bool, error) {
	var err error
	r.matchLabels, err = decodeLabels(r.matchLabels[:0], yoloString(raw))
	if err != nil {
		return labels.EmptyLabels(), nil, false, fmt.Errorf("series %d: %w", id, err)
	}
	if mint > maxt || !matchesAll(r.matchLabels, matchers) || !r.keeps(keep) {
		return labels.EmptyLabels(), nil, false, nil
	}
	chunks, found, err := r.overlapping(id, mint, maxt, true)
	if err != nil || !found {
		return labels.EmptyLabels(), nil, false, err
	}
	ls, err := r.copyLabels(raw)
	return ls, chunks, err == nil, err
}
