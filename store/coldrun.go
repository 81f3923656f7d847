package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/runchunk"
)

// Runs (cold block version 2). A series' float chunks in a partition are
// stored as one run (package runchunk: times and values as packed
// columns, with the chunks' sample counts) rather than as XOR chunks, and
// the block's zstd takes what regularity is left. The encoding study
// (DESIGN.md) found decimal runs a quarter smaller than XOR under zstd;
// packed deltas of a noisy float's bits save what XOR spends on its
// leading-zero and length fields.
//
// Exact by check, not by argument: a series is written as a run only if
// decoding the run rebuilds every one of its chunks bit for bit (the XOR
// appender is deterministic, so a chunk cut from the same samples at the
// same places is the same bytes); any other series (histograms, chunks that
// overlap, a chunk another encoder wrote) keeps its chunks as they were.
// So a read that rebuilds chunks, and a replica's identical chunks or a
// handover, see exactly what the chunks bucket held.
const (
	// runBlockSamples bounds the cost (runCost: samples and chunks) of a
	// block's runs, so that a damaged block that claims many samples in
	// few bytes (a zero-width group of 128 costs 2) cannot make a read
	// rebuild more than this. The encoder keeps a series whose run would
	// pass it as chunks.
	runBlockSamples = runchunk.MaxSamples

	entryChunks byte = 0
	entryRun    byte = 1
)

// appendSeriesEntry appends series recs (one series' records of a block,
// in MaxTime order) as a run if that rebuilds them exactly and its cost
// (runCost) fits in budget, else as its chunks, and returns the cost it
// used. A carried run (coldRecord.run) is written as it is, its cost
// reserved by the caller.
func appendSeriesEntry(raw []byte, recs []coldRecord, budget int) ([]byte, int) {
	if recs[0].run != nil {
		// Carried as it was (coldRecord.run); reserved by the caller.
		raw = binary.AppendUvarint(append(raw, entryRun), uint64(len(recs[0].run)))
		return append(raw, recs[0].run...), 0
	}
	if run, n, ok := encodeRun(recs, budget); ok {
		raw = binary.AppendUvarint(append(raw, entryRun), uint64(len(run)))
		return append(raw, run...), n
	}
	raw = append(raw, entryChunks)
	raw = binary.AppendUvarint(raw, uint64(len(recs)))
	for _, r := range recs {
		raw = binary.BigEndian.AppendUint64(raw, sortableTime(r.maxTime))
		raw = binary.AppendUvarint(raw, uint64(len(r.value)))
		raw = append(raw, r.value...)
	}
	return raw, 0
}

// encodeRun returns recs as a run and its cost (runCost), or false when
// they are not float XOR chunks in strictly rising time, the run would
// cost more than budget, or it would not rebuild them bit for bit.
func encodeRun(recs []coldRecord, budget int) ([]byte, int, bool) {
	var ts []int64
	var vs []float64
	counts := make([]int, len(recs))
	for i, r := range recs {
		if len(r.value) < chunkHeaderLen || chunkenc.Encoding(r.value[8]) != chunkenc.EncXOR {
			return nil, 0, false
		}
		minTime, _ := chunkValueMinTime(r.value)
		// Samples checks the order and bounds, and survives damaged bytes.
		samples, err := Chunk{MinTime: minTime, MaxTime: r.maxTime, Encoding: chunkenc.EncXOR, Data: r.value[chunkHeaderLen:]}.Samples()
		if err != nil || len(samples) == 0 || len(ts)+len(samples) > budget {
			return nil, 0, false
		}
		for _, smp := range samples {
			if (len(ts) > 0 && smp.T <= ts[len(ts)-1]) || smp.H != nil || smp.FH != nil {
				return nil, 0, false
			}
			ts = append(ts, smp.T)
			vs = append(vs, smp.V)
		}
		counts[i] = len(samples)
	}
	out := runchunk.Append(nil, counts, ts, vs)
	got, _, err := decodeRun(out, recs[0].id, nil, len(ts))
	if err != nil || len(got) != len(recs) {
		return nil, 0, false
	}
	for i, r := range recs {
		if got[i].maxTime != r.maxTime || !bytes.Equal(got[i].value, r.value) {
			return nil, 0, false
		}
	}
	if runCost(len(recs), len(ts)) > budget {
		return nil, 0, false
	}
	return out, runCost(len(recs), len(ts)), true
}

// runCost is what a run takes of its block's budget (runchunk.Cost).
func runCost(chunks, samples int) int { return runchunk.Cost(chunks, samples) }

// runSize returns the chunks and samples of a run from its header, without
// decoding it, and errCorrupt for a run that costs more than budget
// (runCost).
func runSize(run []byte, budget int) (chunks, samples int, err error) {
	chunks, samples, err = runchunk.Size(run, budget)
	return chunks, samples, corrupt(err)
}

// corrupt marks a run's decoding error as the store's damage.
func corrupt(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", err, errCorrupt)
}

// decodeRun rebuilds the records of series id from run (exactly one run),
// appended to out, and returns them and the run's samples. A run of more
// than budget samples (callers pass what runSize found, or the samples
// they expect), one whose times do not rise, or bytes after it are
// errCorrupt.
func decodeRun(run []byte, id uint64, out []coldRecord, budget int) ([]coldRecord, int, error) {
	d := runDecodedPool.Get().(*runchunk.Decoded)
	defer releaseDecoded(d)
	if err := runchunk.Decode(run, budget, d); err != nil {
		return nil, 0, corrupt(err)
	}
	// The chunks are written one after another, then copied into one
	// buffer of their exact size: a cached block holds what it is
	// charged for, not append's spare capacity.
	scratch := runXORPool.Get().(*[]byte)
	defer releaseXOR(scratch)
	buf := (*scratch)[:0]
	ends := make([]int, len(d.Counts))
	at := 0
	for i, n := range d.Counts {
		buf = binary.BigEndian.AppendUint64(buf, sortableTime(d.T[at]))
		buf = append(buf, byte(chunkenc.EncXOR))
		buf = runchunk.AppendXOR(buf, d.T[at:at+n], d.V[at:at+n])
		ends[i] = len(buf)
		at += n
	}
	*scratch = buf
	slab := bytes.Clone(buf)
	at, from := 0, 0
	for i, n := range d.Counts {
		out = append(out, coldRecord{id: id, maxTime: d.T[at+n-1], value: slab[from:ends[i]:ends[i]]})
		at, from = at+n, ends[i]
	}
	return out, len(d.T), nil
}

// A run's decoded columns and rebuilt chunks do not outlive decodeRun
// (the records get a copy), so they are pooled rather than allocated for
// every series read; a large run's are not kept, so a damaged block's
// claim of millions of samples is not held.
var (
	runDecodedPool = sync.Pool{New: func() any { return new(runchunk.Decoded) }}
	runXORPool     = sync.Pool{New: func() any { return new([]byte) }}
)

func releaseDecoded(d *runchunk.Decoded) {
	if cap(d.T) <= 1<<16 {
		runDecodedPool.Put(d)
	}
}

func releaseXOR(b *[]byte) {
	if cap(*b) <= 1<<20 {
		runXORPool.Put(b)
	}
}
