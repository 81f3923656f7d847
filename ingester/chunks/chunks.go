package chunks

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
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
	// batchSeries at a time; fn's error stops it and is returned.
	SelectBatches(tenant string, mint, maxt int64, batchSeries int, keep Keep, fn func([]SeriesChunks) error, ms ...*labels.Matcher) error
	// Refs returns the series SelectBatches would, without chunks, sorted
	// by labels, leaving out those known says the caller has.
	Refs(tenant string, mint, maxt int64, keep Keep, known func(id uint64, ls labels.Labels) bool, ms ...*labels.Matcher) ([]SeriesRef, error)
	// ChunksOf returns the chunks overlapping [mint, maxt] of each ref, in
	// the refs' order.
	ChunksOf(tenant string, mint, maxt int64, refs []SeriesRef) ([]SeriesChunks, error)
	// Series returns the labels of the series SelectBatches would.
	Series(tenant string, mint, maxt int64, keep Keep, ms ...*labels.Matcher) ([]labels.Labels, error)
	// LastSamples calls fn with the index in series and the newest stored
	// sample of each series that has one.
	LastSamples(tenant string, series []labels.Labels, fn func(k int, t int64, v float64)) error
	// SampleAt returns the stored value of series ls at t, if there is one.
	SampleAt(tenant string, ls labels.Labels, t int64) (v float64, found bool, err error)
	// ApplyRetention deletes each tenant's chunks that end before now
	// minus the tenant's retention (0 keeps them forever), then the series
	// left without chunks.
	ApplyRetention(now time.Time, retention func(tenant string) time.Duration) (deletedChunks int, err error)
	// Backup calls fn with the size of a consistent copy of the whole
	// store, as of the call, and a function that writes that copy. Puts
	// meanwhile do not show in it, and do not wait for fn: a slow reader
	// of the copy must not stall flushes. The copy, put where the store's
	// file is, opens as the same store.
	Backup(fn func(size int64, write func(io.Writer) (int64, error)) error) error
}

// Sample is one float sample.
type Sample struct {
	T int64
	V float64
}

// ErrCorrupt marks bytes that do not decode as what they claim to be.
var ErrCorrupt = errors.New("corrupt record")

// Samples decodes the chunk's float samples. Damaged bytes often still
// decode, into nonsense: samples must rise strictly in time within
// [MinTime, MaxTime]. On an error it returns the samples before it.
func (c Chunk) Samples() ([]Sample, error) {
	chk, err := chunkenc.FromData(c.Encoding, c.Data)
	if err != nil {
		return nil, err
	}
	var out []Sample
	it := chk.Iterator(nil)
	for {
		switch vt := it.Next(); vt {
		case chunkenc.ValNone:
			return out, it.Err()
		case chunkenc.ValFloat:
			t, v := it.At()
			if t < c.MinTime || t > c.MaxTime || (len(out) > 0 && t <= out[len(out)-1].T) {
				return out, fmt.Errorf("sample at %d out of order or outside [%d, %d]: %w", t, c.MinTime, c.MaxTime, ErrCorrupt)
			}
			out = append(out, Sample{t, v})
		default:
			return out, fmt.Errorf("%s samples cannot be merged", vt)
		}
	}
}

// Check reports why the chunk could not be stored: it must decode into
// float samples rising strictly within [MinTime, MaxTime].
func (c Chunk) Check() error {
	_, err := c.Samples()
	return err
}
