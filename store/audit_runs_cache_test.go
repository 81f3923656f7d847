package store

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// auditRealisticBlock is one block as compaction writes it for typical
// series: 15 s scrapes, 4 chunks of 120 samples per 2-hour partition,
// integer counters and constant gauges.
func auditRealisticBlock(tb testing.TB, series int) ([]byte, []coldRecord) {
	rng := rand.New(rand.NewPCG(1, 1))
	var recs []coldRecord
	for id := 1; id <= series; id++ {
		c := runchunktest.Case{T: make([]int64, 480), V: make([]float64, 480)}
		v := 0.0
		for k := range c.T {
			c.T[k] = 1_700_000_000_000 + int64(k)*15_000
			if id%2 == 0 {
				v += float64(rng.IntN(10))
			} else {
				v = 1
			}
			c.V[k] = v
		}
		recs = append(recs, recordsOf(tb, uint64(id), c, 120)...)
	}
	return encodeColdBlock(recs), recs
}

// auditCharged reads every run of block v through a block cache and
// returns what the cache charges for it and the heap the cached entry
// holds (measured, with the GC), both after the rebuild.
func auditCharged(tb testing.TB, v []byte) (charged, held int) {
	c := newBlockCache(1 << 40)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d, err := c.get("t", 0, idKey(1), v)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range d.series {
		if _, err := s.records(); err != nil {
			tb.Fatal(err)
		}
	}
	d = nil
	// Twice: decodeRun's pooled scratch leaves sync.Pool's victim cache
	// only on the second collection; it is not the cache's to charge.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	c.mu.Lock()
	charged = c.size
	c.mu.Unlock()
	runtime.KeepAlive(c)
	return charged, int(after.HeapAlloc) - int(before.HeapAlloc)
}

// TestAuditRunCacheSizeUnderestimates: the block cache must charge a
// block about what it holds once its runs are rebuilt, or
// -store.block-cache-bytes no longer bounds the cache's memory. At
// e4ed9bb it charges 3 x the decompressed bytes, while ordinary series'
// rebuilt chunks (and appendXOR's 4 B/sample of spare capacity) take
// several times that.
func TestAuditRunCacheSizeUnderestimates(t *testing.T) {
	v, _ := auditRealisticBlock(t, 2000)
	charged, held := auditCharged(t, v)
	t.Logf("stored %d B; cache charges %d B, holds %d B (%.1fx)", len(v), charged, held, float64(held)/float64(charged))
	if float64(held) > 1.5*float64(charged) {
		t.Errorf("a cached block holds %d B but is charged %d B (%.1fx)", held, charged, float64(held)/float64(charged))
	}
}

// auditCraftedRun returns a valid (CRC-correct) version 2 block of one
// series whose run claims samples in chunks of perChunk, all packing to
// zero bits: a few hundred bytes stored for any claim.
func auditCraftedRun(samples, perChunk int) []byte {
	chunks := (samples + perChunk - 1) / perChunk
	run := binary.AppendUvarint(nil, uint64(chunks))
	for left := samples; left > 0; left -= perChunk {
		run = binary.AppendUvarint(run, uint64(min(left, perChunk)))
	}
	run = binary.AppendVarint(run, 0) // t0
	run = binary.AppendVarint(run, 1) // first delta
	for g := 0; g < samples-2; g += 128 {
		run = append(run, 0, 0) // base 0, width 0
	}
	run = append(run, 1) // values as bit deltas
	run = binary.BigEndian.AppendUint64(run, math.Float64bits(1)|1<<63)
	for g := 0; g < samples-1; g += 128 {
		run = append(run, 0, 0)
	}
	raw := binary.AppendUvarint(nil, 1)
	raw = append(raw, entryRun)
	raw = binary.AppendUvarint(raw, uint64(len(run)))
	raw = append(raw, run...)
	return sealColdBlock(coldBlockVersion, raw)
}

// TestAuditCraftedRunAmplification: a block of a few hundred bytes that
// claims a run of the whole budget's samples, all packing to nothing, is
// refused when parsed, its chunks counting against the budget too; one
// within the budget is charged about what it holds once read.
func TestAuditCraftedRunAmplification(t *testing.T) {
	_, err := parseColdBlock(auditCraftedRun(runBlockSamples, math.MaxUint16))
	if !errors.Is(err, errCorrupt) {
		t.Fatalf("a run over the budget parsed: %v", err)
	}
	charged, held := auditCharged(t, auditCraftedRun(runBlockSamples/2, math.MaxUint16))
	t.Logf("cache charges %d B, holds %d B (%.1fx)", charged, held, float64(held)/float64(charged))
	if float64(held) > 1.5*float64(charged) {
		t.Errorf("a block holds %d B after a read but is charged %d B", held, charged)
	}
}

// TestAuditCraftedManyChunks: a run of 2^21 one-sample chunks (152 MB of
// records once rebuilt, from 131 stored bytes) is refused; one within the
// budget is charged about what it holds.
func TestAuditCraftedManyChunks(t *testing.T) {
	_, err := parseColdBlock(auditCraftedRun(runBlockSamples, 1))
	if !errors.Is(err, errCorrupt) {
		t.Fatalf("a run over the budget parsed: %v", err)
	}
	charged, held := auditCharged(t, auditCraftedRun(runBlockSamples/65, 1))
	t.Logf("cache charges %d B, holds %d B (%.1fx)", charged, held, float64(held)/float64(charged))
	if float64(held) > 1.5*float64(charged) {
		t.Errorf("a block holds %d B after a read but is charged %d B", held, charged)
	}
}
