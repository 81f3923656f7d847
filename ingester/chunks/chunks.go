package chunks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/runchunk"
)

// Chunk is one encoded chunk of samples with timestamps in milliseconds
// within [MinTime, MaxTime].
type Chunk struct {
	MinTime, MaxTime int64
	Encoding         chunkenc.Encoding
	Data             []byte
}

// SeriesChunks are chunks of one series.
type SeriesChunks struct {
	Labels labels.Labels
	Chunks []Chunk
}

// SeriesRef names a stored series: by its store ID when the store gave one
// (Refs), else (ID 0) by its labels.
type SeriesRef struct {
	ID     uint64
	Labels labels.Labels
}

// Keep filters series by their labels; nil keeps all.
type Keep func(ls labels.Labels) bool

// Known names the series a Refs caller holds already, so that Refs leaves
// them out. Either field may be nil.
type Known struct {
	// ID reports whether Refs may leave out the series stored under id,
	// an ID an earlier Refs gave the caller, which holds the series or
	// knows it does not want it; asked before the series is read.
	ID func(id uint64) bool
	// Labels reports whether the caller holds the series ls, stored under
	// id (ls valid only during the call); asked about every other series
	// that matches and is kept, before its chunks are sought.
	Labels func(id uint64, ls labels.Labels) bool
}

// Store keeps a tenant's completed chunks and their series index, and
// answers selects by matchers and time. Implementations are safe for
// concurrent use. Times are inclusive milliseconds.
type Store interface {
	// Put stores the chunks, merging with what is stored: a chunk that
	// overlaps a stored chunk of its series ending at the same time is
	// merged sample by sample (the same sample twice is one); putting the
	// same batch again changes nothing. It is durable when it returns.
	Put(tenant string, batch []SeriesChunks) error
	// Tenants returns every tenant with stored series.
	Tenants() ([]string, error)
	// SelectBatches calls fn with the series matching ms that have chunks
	// overlapping [mint, maxt], with those chunks, sorted by labels, at most
	// batchSeries at a time; fn's error stops it and is returned. A chunk
	// may be a run (runchunk.Encoding) standing for several chunks, one of
	// which overlaps the range: read it with runchunk.FromData, or turn it
	// back into those chunks with ExpandRuns. The same holds for ChunksOf.
	SelectBatches(tenant string, mint, maxt int64, batchSeries int, keep Keep, fn func([]SeriesChunks) error, ms ...*labels.Matcher) error
	// Refs returns the series SelectBatches would, without chunks, sorted
	// by labels, leaving out those known says the caller has, whether or
	// not they have chunks in [mint, maxt].
	Refs(tenant string, mint, maxt int64, keep Keep, known Known, ms ...*labels.Matcher) ([]SeriesRef, error)
	// ChunksOf returns the chunks overlapping [mint, maxt] of each ref, in
	// the refs' order; a ref whose ID names no series any more is looked
	// up by its labels, when it has them.
	ChunksOf(tenant string, mint, maxt int64, refs []SeriesRef) ([]SeriesChunks, error)
	// Series returns the labels of the series SelectBatches would.
	Series(tenant string, mint, maxt int64, keep Keep, ms ...*labels.Matcher) ([]labels.Labels, error)
	// LastSamples calls fn with the index in series and the newest stored
	// sample of each series that has one.
	LastSamples(tenant string, series []labels.Labels, fn func(k int, s Sample)) error
	// SampleAt returns the stored sample of series ls at t, if there is one.
	SampleAt(tenant string, ls labels.Labels, t int64) (s Sample, found bool, err error)
	// ApplyRetention deletes each tenant's chunks that end before now
	// minus the tenant's retention (0 keeps them forever) and the chunks
	// wholly inside a tombstone selecting their series, then the series
	// left without chunks. A store may delete compacted chunks past the
	// retention only with the whole partition holding them, reads no
	// longer returning them from the call on, and count them then.
	ApplyRetention(now time.Time, retention func(tenant string) time.Duration) (deletedChunks int, err error)
	// Backup calls fn with the size of a consistent copy of the whole
	// store, as of the call, and a function that writes that copy. Puts
	// meanwhile do not show in it, and do not wait for fn: a slow reader
	// of the copy must not stall flushes. The copy, put where the store's
	// file is, opens as the same store.
	Backup(fn func(size int64, write func(io.Writer) (int64, error)) error) error
	// AddTombstone records, durably when it returns, that the tenant's
	// samples in the tombstone's range of the series its matchers select
	// are deleted. Readers hide the samples; the store deletes the chunks
	// wholly inside the range at the next ApplyRetention.
	AddTombstone(tenant string, t Tombstone) error
	// RaiseGeneration sets the tenant's deletion generation to gen if that
	// is higher, durably, and returns the generation after the call.
	RaiseGeneration(tenant string, gen int64) (int64, error)
	// Deletions returns every tenant's tombstones and generation.
	Deletions() (map[string]Deletions, error)
	// DropTombstones deletes the tenant's tombstones that end before
	// cutoff by more than the longest span of a chunk it ever stored:
	// once retention deleted the chunks ending before cutoff, no stored
	// chunk holds a sample they hide.
	DropTombstones(tenant string, cutoff int64) (dropped int, err error)
	// Compact rewrites the chunks ending in complete partitions of time,
	// those ending at or before before, into the store's compact form, and
	// returns how many it moved. Every read returns the same chunks after
	// as before; a chunk put later into such a partition is compacted by
	// the next call. When ctx ends it stops soon, returning ctx's error;
	// what it did stays done.
	Compact(ctx context.Context, before int64) (moved int, err error)
}

// Tombstone hides the samples in [MinTime, MaxTime] of the series its
// matchers select, as Prometheus's tombstones do.
type Tombstone struct {
	Matchers         []*labels.Matcher
	MinTime, MaxTime int64
}

// Matches reports whether the tombstone applies to a series with labels ls.
func (t Tombstone) Matches(ls labels.Labels) bool {
	for _, m := range t.Matchers {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Equal reports whether o is the same deletion: the same range and the
// same matchers in the same order.
func (t Tombstone) Equal(o Tombstone) bool {
	return t.MinTime == o.MinTime && t.MaxTime == o.MaxTime && slices.EqualFunc(t.Matchers, o.Matchers, func(a, b *labels.Matcher) bool {
		return a.Type == b.Type && a.Name == b.Name && a.Value == b.Value
	})
}

// Deletions are a tenant's tombstones and its deletion generation: a
// number raised after every completed deletion, which results caches
// put in their keys so that no answer cached before it is served after.
// MaxGeneration bounds deletion generations (nanoseconds since the epoch:
// the year 2116), so that one past the highest never overflows; a stored
// one beyond it is damaged.
const MaxGeneration = 1 << 62

type Deletions struct {
	Tombstones []Tombstone
	// Generation is -1 when the stored value is damaged: unknown until
	// the next raise replaces it.
	Generation int64
}

// Sample is one sample: a float (H and FH nil), an integer histogram (H)
// or a float histogram (FH).
type Sample struct {
	T  int64
	V  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// Type is the sample's value type.
func (s Sample) Type() chunkenc.ValueType {
	switch {
	case s.H != nil:
		return chunkenc.ValHistogram
	case s.FH != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// Same reports whether a and b are the same sample: floats by their bits
// (a NaN equals itself, a stale marker only another), histograms by their
// bits too but ignoring empty buckets. A chunk takes a histogram into the
// layout of the histograms before it, adding empty buckets, so a retried
// histogram would otherwise differ from the one it repeats.
func Same(a, b Sample) bool {
	if a.T != b.T || a.Type() != b.Type() {
		return false
	}
	switch a.Type() {
	case chunkenc.ValHistogram:
		return a.H.Equals(b.H) || a.H.Copy().Compact(0).Equals(b.H.Copy().Compact(0))
	case chunkenc.ValFloatHistogram:
		return a.FH.Equals(b.FH) || a.FH.Copy().Compact(0).Equals(b.FH.Copy().Compact(0))
	}
	return math.Float64bits(a.V) == math.Float64bits(b.V)
}

// ErrCorrupt marks bytes that do not decode as what they claim to be.
var ErrCorrupt = errors.New("corrupt record")

// Samples decodes the chunk's samples. Damaged bytes often still decode,
// into nonsense: samples must rise strictly in time within [MinTime,
// MaxTime]. On an error it returns the samples before it.
func (c Chunk) Samples() (out []Sample, err error) {
	chk, err := runchunk.FromData(c.Encoding, c.Data)
	if err != nil {
		return nil, err
	}
	// chunkenc panics on some damaged histogram chunks (a reserved schema
	// it cannot reduce); bytes from a peer or a disk must not stop the
	// process.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("chunk decoder panicked: %v: %w", r, ErrCorrupt)
		}
	}()
	it := chk.Iterator(nil)
	for {
		var s Sample
		switch vt := it.Next(); vt {
		case chunkenc.ValNone:
			return out, it.Err()
		case chunkenc.ValFloat:
			s.T, s.V = it.At()
		case chunkenc.ValHistogram:
			s.T, s.H = it.AtHistogram(nil)
			if err := s.H.Validate(); err != nil {
				return out, fmt.Errorf("histogram at %d: %w: %w", s.T, err, ErrCorrupt)
			}
		case chunkenc.ValFloatHistogram:
			s.T, s.FH = it.AtFloatHistogram(nil)
			if err := s.FH.Validate(); err != nil {
				return out, fmt.Errorf("histogram at %d: %w: %w", s.T, err, ErrCorrupt)
			}
		default:
			return out, fmt.Errorf("%s samples cannot be merged", vt)
		}
		if s.T < c.MinTime || s.T > c.MaxTime || (len(out) > 0 && s.T <= out[len(out)-1].T) {
			return out, fmt.Errorf("sample at %d out of order or outside [%d, %d]: %w", s.T, c.MinTime, c.MaxTime, ErrCorrupt)
		}
		out = append(out, s)
	}
}

// Check reports why the chunk could not be stored: it must decode into
// samples rising strictly within [MinTime, MaxTime].
func (c Chunk) Check() error {
	_, err := c.Samples()
	return err
}

// Encode encodes samples, which rise strictly in time, into as few chunks
// as their types and histogram layouts allow: a chunk holds one type, and
// a histogram its chunk cannot take (a counter reset, buckets the chunk
// cannot hold) starts another, as in Prometheus's head. maxSamples, when
// above 0, caps a chunk's samples; a chunk never takes more than 65535,
// where chunkenc's appenders panic.
func Encode(samples []Sample, maxSamples int) ([]Chunk, error) {
	if maxSamples <= 0 || maxSamples > math.MaxUint16 {
		maxSamples = math.MaxUint16
	}
	e := encoder{maxSamples: maxSamples}
	for _, s := range samples {
		if err := e.add(s); err != nil {
			return nil, fmt.Errorf("encode sample at %d: %w", s.T, err)
		}
	}
	e.complete()
	return e.out, nil
}

type encoder struct {
	maxSamples int
	out        []Chunk
	cur        chunkenc.Chunk
	app        chunkenc.Appender
	minT, maxT int64
}

func (e *encoder) complete() {
	if e.cur == nil {
		return
	}
	e.cur.Compact()
	e.out = append(e.out, Chunk{MinTime: e.minT, MaxTime: e.maxT, Encoding: e.cur.Encoding(), Data: e.cur.Bytes()})
	e.cur, e.app = nil, nil
}

func (e *encoder) add(s Sample) error {
	enc := s.Type().ChunkEncoding(false, false)
	var prev chunkenc.Appender
	if e.cur == nil || e.cur.Encoding() != enc || e.cur.NumSamples() >= e.maxSamples {
		if e.cur != nil && e.cur.Encoding() == enc {
			// It tells the new chunk's first histogram whether a counter
			// reset lies between the chunks.
			prev = e.app
		}
		e.complete()
		c, err := chunkenc.NewEmptyChunk(enc)
		if err != nil {
			return err
		}
		app, err := c.Appender()
		if err != nil {
			return err
		}
		e.cur, e.app, e.minT = c, app, s.T
	}
	var (
		next    chunkenc.Chunk
		recoded bool
		app     chunkenc.Appender
		err     error
	)
	switch s.Type() {
	case chunkenc.ValFloat:
		e.app.Append(0, s.T, s.V)
	case chunkenc.ValHistogram:
		next, recoded, app, err = e.app.AppendHistogram(prev, 0, s.T, s.H, false)
	case chunkenc.ValFloatHistogram:
		next, recoded, app, err = e.app.AppendFloatHistogram(prev, 0, s.T, s.FH, false)
	}
	if err != nil {
		return err
	}
	switch {
	case next == nil:
	case recoded:
		e.cur, e.app = next, app
	default:
		e.complete()
		e.cur, e.app, e.minT = next, app, s.T
	}
	e.maxT = s.T
	return nil
}

// ExpandRuns replaces each chunk of runchunk.Encoding in cs by those of
// the XOR chunks it was made from (byte for byte) that overlap [mint,
// maxt], keeping cs in MinTime order; cs is returned as it is when it
// holds no run. A reader that cannot decode runs (an older querier, a
// peer's store) gets what a store that never compacted would have sent.
func ExpandRuns(cs []Chunk, mint, maxt int64) ([]Chunk, error) {
	if !slices.ContainsFunc(cs, func(c Chunk) bool { return c.Encoding == runchunk.Encoding }) {
		return cs, nil
	}
	out := make([]Chunk, 0, len(cs)+8)
	for _, c := range cs {
		if c.Encoding != runchunk.Encoding {
			out = append(out, c)
			continue
		}
		xs, err := runchunk.XORChunks(c.Data, runchunk.MaxSamples)
		if err != nil {
			return nil, fmt.Errorf("run of [%d, %d]: %w", c.MinTime, c.MaxTime, err)
		}
		for _, x := range xs {
			if x.MaxTime < mint || x.MinTime > maxt {
				continue
			}
			out = append(out, Chunk{MinTime: x.MinTime, MaxTime: x.MaxTime, Encoding: chunkenc.EncXOR, Data: x.Data})
		}
	}
	slices.SortStableFunc(out, func(a, b Chunk) int { return cmp.Compare(a.MinTime, b.MinTime) })
	return out, nil
}
