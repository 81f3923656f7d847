package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/runchunk"
)

// Cold partitions (issue 12, compaction). Once a 2-hour partition of time
// is complete, Compact moves the chunks that end in it out of the chunks
// bucket into blocks: a run of consecutive series, each series' float
// chunks as one run of packed columns (coldrun.go) where that rebuilds
// them exactly, compressed together with zstd. Blocks are written whole so
// their pages are full, and the per-chunk keys disappear. Reads find a
// series' block by its ID, decompress it once per read transaction (or
// find it in the block cache) and rebuild the series' chunks, so what
// every read returns is unchanged: the same chunks, bit for bit.
const (
	// coldBlockVersion is the block encodeColdBlock writes: series as
	// runs or chunks (coldrun.go). coldBlockChunksOnly, every record a
	// chunk, is what version 4 files hold; it is still read.
	coldBlockVersion    = 2
	coldBlockChunksOnly = 1
	coldHeaderLen       = 1 + 4 // version, CRC-32C of the compressed bytes
	// coldBlockTarget is the size of chunks at which a block is cut, at
	// a series boundary: large enough for zstd to find the series'
	// likeness, small enough that reading one series decompresses little.
	coldBlockTarget = 256 << 10
	// compactBatchSeries and compactBatchBytes bound the series and chunk
	// bytes one compaction transaction (or one retention rewrite of
	// blocks) encodes, new chunks and the existing blocks they join (each
	// counted as coldBlockTarget) alike, so that Put waits for the
	// writer lock one batch at most: encoding runs costs about 100 ms per
	// 256 KiB block here. A single series may pass it, up to coldGroupMax/2.
	compactBatchSeries = 2000
	compactBatchBytes  = 4 << 20
	// coldCacheMax bounds the decoded blocks a read holds: one per
	// partition, so a range over 10 days keeps them all.
	coldCacheMax = 120
)

// coldGroupMax bounds the chunk bytes one compaction transaction takes in
// (half of it) and so what a block rewrite holds in memory; a series with
// more than half in one partition stays in the chunks bucket. A variable
// so that tests can lower it.
var coldGroupMax = 32 << 20

var (
	bucketCold       = []byte("cold")
	bucketColdSeries = []byte("cold_series")
	bucketColdDirty  = []byte("cold_dirty")
	keyColdTo        = []byte("cold_to")
	keyRetainedFrom  = []byte("retained_from")
	bucketColdStones = []byte("cold_stones")
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zstdEnc    = mustZstdEncoder()
	zstdDec    = mustZstdDecoder()
)

func mustZstdEncoder() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder with constant options: %v", err))
	}
	return e
}

func mustZstdDecoder() *zstd.Decoder {
	// The memory bound holds against a damaged block claiming a huge
	// size: no block is written larger than coldGroupMax (32 MiB).
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder with constant options: %v", err))
	}
	return d
}

// coldRecord is one chunk in a block: its series, MaxTime and the value
// the chunks bucket would hold (encodeChunkValue).
type coldRecord struct {
	id      uint64
	maxTime int64
	value   []byte
	// run, when set, is a series' run carried into a rewritten block
	// byte for byte (readable): one that does not rebuild, or one a
	// rewrite has no need to rebuild. The record stands for the series'
	// whole entry, with maxTime MinInt64 and no value.
	run []byte
}

func compareRecords(a, b coldRecord) int {
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.maxTime, b.maxTime)
}

// encodeColdBlock compresses records, sorted by series and MaxTime: each
// series as a run where that is exact (coldrun.go), else as its chunks.
func encodeColdBlock(recs []coldRecord) []byte {
	var raw []byte
	prev, budget := uint64(0), runBlockSamples
	for _, r := range recs {
		// A carried run parsed within the budget of the block it came
		// from, beside the same or fewer runs: it is reserved first.
		if r.run != nil {
			chunks, samples, _ := runSize(r.run, math.MaxInt)
			budget -= runCost(chunks, samples)
		}
	}
	for start := 0; start < len(recs); {
		end := start + 1
		for end < len(recs) && recs[end].id == recs[start].id {
			end++
		}
		raw = binary.AppendUvarint(raw, recs[start].id-prev)
		var used int
		raw, used = appendSeriesEntry(raw, recs[start:end], budget)
		budget -= used
		prev, start = recs[start].id, end
	}
	return sealColdBlock(coldBlockVersion, raw)
}

// blockData is a decoded block: its series in ID order, each with its
// records. A run is rebuilt into chunks on first use (records), so that a
// read of a few series pays for those only; a cached block is shared by
// concurrent reads, hence the Once.
type blockData struct {
	series []*blockSeries
	// size is what the block cache charges for it when it is parsed:
	// the decompressed bytes and the entries. Each run rebuilt later
	// reports its chunks' bytes to grew, which the cache sets when it
	// keeps the block.
	size int
	grew func(bytes int)
	// rebuilt estimates what the runs add once rebuilt (2 B a sample and
	// a record a chunk), so the cache does not admit a block that would
	// grow past what it takes.
	rebuilt int
}

type blockSeries struct {
	block   *blockData
	id      uint64
	run     []byte // a run to rebuild (lazy); nil for chunks
	samples int    // the run's samples, checked against the block's budget
	chunks  int    // the records it holds
	once    sync.Once
	recs    []coldRecord
	err     error
	// The run's chunks' MinTimes and MaxTimes, read from its times alone
	// (runBounds), for a read that hands the run on whole.
	boundsOnce   sync.Once
	starts, ends []int64
	boundsErr    error
}

// recordSize and seriesEntrySize are what a decoded block holds beside
// the bytes, charged by the block cache.
const (
	recordSize      = int(unsafe.Sizeof(coldRecord{}))
	seriesEntrySize = int(unsafe.Sizeof(blockSeries{})) + 8 // and its pointer
)

// records returns the series' records, rebuilding a run the first time.
func (b *blockSeries) records() ([]coldRecord, error) {
	if b.run == nil {
		return b.recs, nil
	}
	b.once.Do(func() {
		b.recs, _, b.err = decodeRun(b.run, b.id, make([]coldRecord, 0, b.chunks), b.samples)
		if b.err == nil && len(b.recs) != b.chunks {
			b.err = fmt.Errorf("cold block run of series %d: %d chunks, not %d: %w", b.id, len(b.recs), b.chunks, errCorrupt)
		}
		if b.err == nil && b.block.grew != nil {
			size := 0
			for _, r := range b.recs {
				size += len(r.value) + recordSize
			}
			b.block.grew(size)
		}
	})
	return b.recs, b.err
}

// runBounds returns the MinTimes and MaxTimes of the run's chunks, in
// rising order, decoding its times only, once (cached blocks are shared).
func (b *blockSeries) runBounds() (starts, ends []int64, err error) {
	b.boundsOnce.Do(func() {
		d := runDecodedPool.Get().(*runchunk.Decoded)
		defer releaseDecoded(d)
		if b.boundsErr = corrupt(runchunk.DecodeTimes(b.run, b.samples, d)); b.boundsErr != nil {
			return
		}
		if len(d.Counts) != b.chunks {
			b.boundsErr = fmt.Errorf("cold block run of series %d: %d chunks, not %d: %w", b.id, len(d.Counts), b.chunks, errCorrupt)
			return
		}
		b.starts, b.ends = make([]int64, 0, len(d.Counts)), make([]int64, 0, len(d.Counts))
		at := 0
		for _, n := range d.Counts {
			b.starts = append(b.starts, d.T[at])
			at += n
			b.ends = append(b.ends, d.T[at-1])
		}
		if b.block.grew != nil {
			b.block.grew(16 * len(b.ends))
		}
	})
	return b.starts, b.ends, b.boundsErr
}

// find returns the entry of series id, nil if the block has none.
func (d *blockData) find(id uint64) *blockSeries {
	at, ok := slices.BinarySearchFunc(d.series, id, func(b *blockSeries, id uint64) int { return cmp.Compare(b.id, id) })
	if !ok {
		return nil
	}
	return d.series[at]
}

// all returns every record of the block in order; a run that does not
// rebuild makes the whole block errCorrupt.
func (d *blockData) all() ([]coldRecord, error) {
	n := 0
	for _, b := range d.series {
		n += b.chunks
	}
	out := make([]coldRecord, 0, n)
	for _, b := range d.series {
		recs, err := b.records()
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// chunkCount is the number of records, without rebuilding runs.
func (d *blockData) chunkCount() int {
	n := 0
	for _, b := range d.series {
		n += b.chunks
	}
	return n
}

// sealColdBlock compresses a block's entries and puts the version and
// checksum before them.
func sealColdBlock(version byte, raw []byte) []byte {
	out := make([]byte, coldHeaderLen, coldHeaderLen+len(raw)/2)
	out[0] = version
	out = zstdEnc.EncodeAll(raw, out)
	binary.BigEndian.PutUint32(out[1:], crc32.Checksum(out[coldHeaderLen:], castagnoli))
	return out
}

// readable returns the records of block d for a rewrite of the block,
// rebuilding only the series want selects (nil: all); the others'
// entries are carried as they are. A run that does not rebuild is
// counted and logged as damage, as a read of it is, and carried byte for
// byte (coldRecord.run): it was checked when written, so a failure to
// rebuild it now is a decoder's fault, which a fixed binary may undo.
func (s *Store) readable(tenant string, p int64, key []byte, d *blockData, want func(id uint64) bool) []coldRecord {
	out := make([]coldRecord, 0, d.chunkCount())
	for _, b := range d.series {
		if b.run != nil && want != nil && !want(b.id) {
			out = append(out, coldRecord{id: b.id, maxTime: math.MinInt64, run: b.run})
			continue
		}
		recs, err := b.records()
		if err != nil {
			s.coldDamaged(tenant, p, key, err)
			out = append(out, coldRecord{id: b.id, maxTime: math.MinInt64, run: b.run})
			continue
		}
		out = append(out, recs...)
	}
	return out
}

// decodeColdBlock returns the records of a block, of either version; their
// values point into fresh buffers, not into v. Anything but a block
// encodeColdBlock wrote is errCorrupt.
func decodeColdBlock(v []byte) ([]coldRecord, error) {
	d, err := parseColdBlock(v)
	if err != nil {
		return nil, err
	}
	return d.all()
}

// parseColdBlock checks and decompresses a block, of either version,
// leaving its runs to be rebuilt when read. Anything but a block
// encodeColdBlock wrote is errCorrupt, here or when a run is read.
func parseColdBlock(v []byte) (*blockData, error) {
	if len(v) < coldHeaderLen || (v[0] != coldBlockVersion && v[0] != coldBlockChunksOnly) {
		return nil, fmt.Errorf("cold block of %d bytes, version %v: %w", len(v), v[:min(len(v), 1)], errCorrupt)
	}
	if crc32.Checksum(v[coldHeaderLen:], castagnoli) != binary.BigEndian.Uint32(v[1:]) {
		return nil, fmt.Errorf("cold block checksum mismatch: %w", errCorrupt)
	}
	raw, err := zstdDec.DecodeAll(v[coldHeaderLen:], nil)
	if err != nil {
		return nil, fmt.Errorf("cold block: %v: %w", err, errCorrupt)
	}
	d := &blockData{size: len(raw)}
	id, budget := uint64(0), runBlockSamples
	for len(raw) > 0 {
		delta, n := binary.Uvarint(raw)
		if n <= 0 {
			return nil, fmt.Errorf("cold block record header: %w", errCorrupt)
		}
		id += delta
		raw = raw[n:]
		var last *blockSeries
		if len(d.series) > 0 {
			last = d.series[len(d.series)-1]
		}
		if last != nil && (id < last.id || (id == last.id && (v[0] == coldBlockVersion || last.run != nil))) {
			return nil, fmt.Errorf("cold block series out of order: %w", errCorrupt)
		}
		if last == nil || id != last.id {
			last = &blockSeries{block: d, id: id}
			d.series = append(d.series, last)
			d.size += seriesEntrySize
		}
		count := uint64(1)
		if v[0] == coldBlockVersion {
			if len(raw) == 0 {
				return nil, fmt.Errorf("cold block series entry: %w", errCorrupt)
			}
			kind := raw[0]
			raw = raw[1:]
			switch kind {
			case entryRun:
				size, n := binary.Uvarint(raw)
				if n <= 0 || size == 0 || size > uint64(len(raw)-n) {
					return nil, fmt.Errorf("cold block run of %d bytes: %w", size, errCorrupt)
				}
				last.run = raw[n : n+int(size) : n+int(size)]
				raw = raw[n+int(size):]
				if last.chunks, last.samples, err = runSize(last.run, budget); err != nil {
					return nil, fmt.Errorf("cold block series %d: %w", id, err)
				}
				budget -= runCost(last.chunks, last.samples)
				d.rebuilt += 2*last.samples + last.chunks*(recordSize+chunkHeaderLen+2)
				continue
			case entryChunks:
				count, n = binary.Uvarint(raw)
				if n <= 0 || count == 0 || count > uint64(len(raw)) {
					return nil, fmt.Errorf("cold block series of %d chunks: %w", count, errCorrupt)
				}
				raw = raw[n:]
			default:
				return nil, fmt.Errorf("cold block series entry of kind %d: %w", kind, errCorrupt)
			}
		}
		for range count {
			if len(raw) < 8 {
				return nil, fmt.Errorf("cold block record header: %w", errCorrupt)
			}
			r := coldRecord{id: id, maxTime: unsortableTime(binary.BigEndian.Uint64(raw))}
			raw = raw[8:]
			size, n := binary.Uvarint(raw)
			if n <= 0 || size < chunkHeaderLen || size > uint64(len(raw)-n) {
				return nil, fmt.Errorf("cold block record of %d bytes: %w", size, errCorrupt)
			}
			r.value = raw[n : n+int(size) : n+int(size)]
			raw = raw[n+int(size):]
			if len(last.recs) > 0 && last.recs[len(last.recs)-1].maxTime >= r.maxTime {
				return nil, fmt.Errorf("cold block records out of order: %w", errCorrupt)
			}
			if minTime, _ := chunkValueMinTime(r.value); minTime > r.maxTime {
				return nil, fmt.Errorf("cold block chunk [%d, %d]: %w", minTime, r.maxTime, errCorrupt)
			}
			last.recs = append(last.recs, r)
			last.chunks++
			d.size += recordSize
		}
	}
	return d, nil
}

// coldReader reads a tenant's cold partitions within a read transaction,
// keeping the last block decoded per partition: series are visited in ID
// order, so a select decompresses each block it needs once.
type coldReader struct {
	parts, series *bbolt.Bucket
	retainedFrom  int64
	cache         map[int64]*coldBlock
	env           coldEnv
}

// coldEnv is what a cold reader shares with the store: the decoded blocks
// of earlier reads (nil: none) and where damage is reported.
type coldEnv struct {
	tenant  string
	blocks  *blockCache
	damaged func(partition int64, key []byte, err error)
}

// coldBlock is a decoded block and the series IDs it covers, [first,
// next) (next 0: to the end). data is nil for a damaged block.
type coldBlock struct {
	first, next uint64
	data        *blockData
}

func (b *coldBlock) covers(id uint64) bool { return id >= b.first && (b.next == 0 || id < b.next) }

func openColdReader(tb *bbolt.Bucket, env coldEnv) *coldReader {
	parts := tb.Bucket(bucketCold)
	if parts == nil {
		return nil
	}
	return &coldReader{
		parts: parts, series: tb.Bucket(bucketColdSeries), retainedFrom: readTime(tb, keyRetainedFrom),
		cache: map[int64]*coldBlock{}, env: env,
	}
}

// readTime reads a sortable time key of the tenant, MinInt64 when absent
// or damaged: nothing is hidden or skipped on its account.
func readTime(tb *bbolt.Bucket, key []byte) int64 {
	v := tb.Get(key)
	if len(v) != 8 {
		return math.MinInt64
	}
	return unsortableTime(binary.BigEndian.Uint64(v))
}

// each calls fn with the records of series id whose MaxTime lies in
// [mint, limit], in partition and then MaxTime order, until fn returns
// false. Records retention has passed (MaxTime before retainedFrom) are
// left out, as the chunks bucket no longer holds theirs.
func (cr *coldReader) each(id uint64, mint, limit int64, fn func(coldRecord) bool) {
	cr.entries(id, mint, limit, func(p int64, first uint64, series *blockSeries) bool {
		return cr.eachRecord(p, first, series, mint, limit, fn)
	})
}

// entries calls fn with series id's entry in each partition from that of
// mint (or of retention's start, if later) to that of limit, with the
// partition and its block's first ID, until fn returns false.
func (cr *coldReader) entries(id uint64, mint, limit int64, fn func(p int64, first uint64, series *blockSeries) bool) {
	mint = max(mint, cr.retainedFrom, -saneTime)
	if mint > limit || mint > saneTime {
		return
	}
	c := cr.parts.Cursor()
	for k, v := c.Seek(timeKey(partitionOf(mint))); k != nil; k, v = c.Next() {
		if v != nil || len(k) != 8 {
			continue
		}
		p := unsortableTime(binary.BigEndian.Uint64(k))
		if p > limit {
			return
		}
		b := cr.block(p, cr.parts.Bucket(k), id)
		if b == nil || b.data == nil {
			continue
		}
		series := b.data.find(id)
		if series == nil {
			continue
		}
		if !fn(p, b.first, series) {
			return
		}
	}
}

// eachRecord calls fn with the entry's records whose MaxTime lies in
// [mint, limit] and not before retention's start, and returns false when
// fn did. A run that does not rebuild is reported and passed over.
func (cr *coldReader) eachRecord(p int64, first uint64, series *blockSeries, mint, limit int64, fn func(coldRecord) bool) bool {
	recs, err := series.records()
	if err != nil {
		if cr.env.damaged != nil {
			cr.env.damaged(p, idKey(first), err)
		}
		return true
	}
	mint = max(mint, cr.retainedFrom)
	at, _ := slices.BinarySearchFunc(recs, mint, func(r coldRecord, t int64) int { return cmp.Compare(r.maxTime, t) })
	for _, r := range recs[at:] {
		if r.maxTime > limit {
			break
		}
		if !fn(r) {
			return false
		}
	}
	return true
}

// wholeRun returns the entry's run as one chunk of runchunk.Encoding (a
// copy: blocks are shared and cached) when it stands for exactly the
// records a read of [mint, maxt] would take from it: every chunk it was
// made from overlaps the range, none is passed by retention, and none is
// superseded by a chunk in the chunks bucket that ends at the same time
// (hotEnds). Otherwise the records answer, as for a store that held
// chunks: a read of part of a partition then gets and is charged for the
// chunks it overlaps, not the partition's every sample.
func (cr *coldReader) wholeRun(series *blockSeries, mint, maxt int64, hotEnds []int64) (Chunk, bool) {
	if series.run == nil {
		return Chunk{}, false
	}
	starts, ends, err := series.runBounds()
	if err != nil || ends[0] < cr.retainedFrom {
		return Chunk{}, false
	}
	for _, t := range hotEnds {
		if _, found := slices.BinarySearch(ends, t); found {
			return Chunk{}, false
		}
	}
	// Chunks are in time order: if the first and the last overlap the
	// range, so do those between.
	if ends[0] < mint || starts[len(starts)-1] > maxt {
		return Chunk{}, false
	}
	return Chunk{MinTime: starts[0], MaxTime: ends[len(ends)-1], Encoding: runchunk.Encoding, Data: bytes.Clone(series.run)}, true
}

// block returns the decoded block of partition p that covers series id,
// nil when none does.
func (cr *coldReader) block(p int64, pb *bbolt.Bucket, id uint64) *coldBlock {
	if b := cr.cache[p]; b != nil && b.covers(id) {
		return b
	}
	if pb == nil {
		return nil
	}
	key, v, next := coldBlockFor(pb, id)
	if key == nil {
		return nil
	}
	if len(cr.cache) >= coldCacheMax {
		// A range over more partitions than this decodes their blocks
		// again for later series, rather than hold them all.
		clear(cr.cache)
	}
	b := &coldBlock{first: binary.BigEndian.Uint64(key), next: next}
	data, err := cr.env.blocks.get(cr.env.tenant, p, key, v)
	if err != nil {
		if cr.env.damaged != nil {
			cr.env.damaged(p, key, err)
		}
	} else {
		b.data = data
	}
	cr.cache[p] = b
	return b
}

// coldBlockFor returns the key and value of the block of partition bucket
// pb covering series id (the one with the greatest key at most id), and
// the next block's first ID (0 if none).
func coldBlockFor(pb *bbolt.Bucket, id uint64) (key, value []byte, next uint64) {
	c := pb.Cursor()
	k, v := c.Seek(idKey(id))
	switch {
	case len(k) == idLen && binary.BigEndian.Uint64(k) == id:
		if nk, _ := c.Next(); len(nk) == idLen {
			next = binary.BigEndian.Uint64(nk)
		}
		return k, v, next
	case k == nil:
		k, v = c.Last()
	default:
		// A key of another length is damage: no ID bounds the block.
		if len(k) == idLen {
			next = binary.BigEndian.Uint64(k)
		}
		k, v = c.Prev()
	}
	if len(k) != idLen || v == nil {
		return nil, nil, 0
	}
	return k, v, next
}

// newest returns series id's cold chunk with the greatest MaxTime, within
// the transaction.
func (cr *coldReader) newest(id uint64) (coldRecord, bool) {
	if cr.series == nil {
		return coldRecord{}, false
	}
	t := readTime(cr.series, idKey(id))
	if t == math.MinInt64 || t < cr.retainedFrom {
		return coldRecord{}, false
	}
	var found coldRecord
	ok := false
	cr.each(id, t, t, func(r coldRecord) bool { found, ok = r, true; return false })
	return found, ok
}

// Compact moves the stored chunks that end in a complete partition (one
// ending at or before before, in milliseconds) into cold blocks, tenant by
// tenant, and returns how many chunks it moved. Reads return the same
// chunks before and after. A chunk written later into a compacted
// partition (an out-of-order flush, a handover) is stored as usual and
// marks the partition for the next pass. Partitions of an upgraded tenant
// from before its active index stay as they are. A tenant's failure does
// not stop the others'; the errors are returned together. When ctx ends,
// it stops after the transaction under way and returns ctx's error.
func (s *Store) Compact(ctx context.Context, before int64) (moved int, err error) {
	tenants, err := s.tenants()
	if err != nil {
		return 0, fmt.Errorf("store: compact: %w", err)
	}
	deletions, err := s.Deletions()
	if err != nil {
		return 0, fmt.Errorf("store: compact: %w", err)
	}
	var errs []error
	for _, tenant := range tenants {
		n, err := s.compactTenant(ctx, tenant, before, deletions[tenant].Tombstones)
		moved += n
		s.m.compactedChunks.Add(float64(n))
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("store: compact: %w", err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("store: compact tenant %q: %w", tenant, err))
		}
	}
	return moved, errors.Join(errs...)
}

func (s *Store) compactTenant(ctx context.Context, tenant string, before int64, stones []Tombstone) (int, error) {
	var todo []int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil || tb.Bucket(bucketActive) == nil {
			return nil
		}
		from := max(readActiveFrom(tb), readTime(tb, keyColdTo))
		complete := func(p int64) bool { return p >= -saneTime && p <= saneTime-activeWidth && p+activeWidth <= before }
		err := tb.Bucket(bucketActive).ForEachBucket(func(k []byte) error {
			if len(k) == 8 {
				if p := unsortableTime(binary.BigEndian.Uint64(k)); p >= from && complete(p) {
					todo = append(todo, p)
				}
			}
			return nil
		})
		if dirty := tb.Bucket(bucketColdDirty); dirty != nil && err == nil {
			err = dirty.ForEach(func(k, _ []byte) error {
				if len(k) == 8 {
					if p := unsortableTime(binary.BigEndian.Uint64(k)); complete(p) {
						todo = append(todo, p)
					}
				}
				return nil
			})
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	slices.Sort(todo)
	moved := 0
	for _, p := range slices.Compact(todo) {
		n, err := s.compactPartition(ctx, tenant, p, stones)
		moved += n
		if err != nil {
			return moved, fmt.Errorf("partition %d: %w", p, err)
		}
	}
	return moved, nil
}

// compactPartition moves the chunks of tenant ending in partition p into
// its blocks, a batch of series per transaction. The partition's dirty
// mark is cleared first, so that a Put during the pass marks it again.
func (s *Store) compactPartition(ctx context.Context, tenant string, p int64, stones []Tombstone) (int, error) {
	var ids []uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil || tb.Bucket(bucketActive) == nil {
			return nil
		}
		if dirty := tb.Bucket(bucketColdDirty); dirty != nil {
			if err := dirty.Delete(timeKey(p)); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{timeKey(p), bucketWide} {
			if b := tb.Bucket(bucketActive).Bucket(name); b != nil {
				var err error
				ids, _, err = (idSet{b, nil}).appendTo(ids, -1)
				if errors.Is(err, errCorrupt) {
					// The series it lists past the damage keep their
					// chunks in the chunks bucket, where reads find them.
					s.logger.Error("damaged active index list: compaction leaves the chunks of the series it lost as they are", "tenant", tenant, "partition_start_ms", p, "err", err)
				} else if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	moved := 0
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			// cold_to stays: the next pass does this partition again.
			return moved, err
		}
		var used int
		err := s.db.Update(func(tx *bbolt.Tx) error {
			if tx.Bucket(bucketTenants).Bucket([]byte(tenant)) == nil {
				used = len(ids)
				return nil
			}
			w, err := openTenantWriter(tx, tenant)
			if err != nil {
				return err
			}
			n, k, err := s.compactSeries(w, p, ids[:min(len(ids), compactBatchSeries)], stones)
			moved, used = moved+n, k
			if err != nil {
				return err
			}
			// Chunks it puts back into the chunks bucket count for a
			// retention pass running beside it, as a Put's do.
			return w.saveLate()
		})
		if err != nil {
			return moved, err
		}
		ids = ids[used:]
	}
	return moved, s.db.Update(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil || readTime(tb, keyColdTo) >= p+activeWidth {
			return nil
		}
		return tb.Put(keyColdTo, timeKey(p+activeWidth))
	})
}

// coldGroup is the series of one compaction batch whose chunks go into
// the same block: the block with the greatest first ID at most theirs
// (key), or, for series before every block, a new one (key nil).
type coldGroup struct {
	key []byte
	ids []uint64
	hot []coldRecord
}

// compactSeries moves the chunks of the series ids (from the first, while
// their bytes stay under coldGroupMax) that end in partition p into p's
// blocks, within w's transaction, and returns how many chunks it moved and
// how many of ids it went through. Chunks that end before the retention
// cutoff the reads apply to blocks (retained_from) stay where they are,
// so that a late chunk kept by a longer retention is not hidden; so do a
// damaged chunk and one series' chunks beyond coldGroupMax.
func (s *Store) compactSeries(w *tenantWriter, p int64, ids []uint64, stones []Tombstone) (moved, used int, err error) {
	cold, err := w.tenant.CreateBucketIfNotExists(bucketCold)
	if err != nil {
		return 0, 0, err
	}
	pb, err := cold.CreateBucketIfNotExists(timeKey(p))
	if err != nil {
		return 0, 0, err
	}
	pb.FillPercent = 1 // blocks are written in key order, and whole
	// What this pass writes was filtered by the tombstones as they were
	// when it began: retention looks at the partition again.
	if marks := w.tenant.Bucket(bucketColdStones); marks != nil {
		if err := marks.Delete(timeKey(p)); err != nil {
			return 0, 0, err
		}
	}
	coldSeries, err := w.tenant.CreateBucketIfNotExists(bucketColdSeries)
	if err != nil {
		return 0, 0, err
	}
	coldSeries.FillPercent = fillAppend
	retainedFrom := readTime(w.tenant, keyRetainedFrom)
	groups := map[string]*coldGroup{}
	var order []string
	c := w.chunks.Cursor()
	size := 0
	for _, id := range ids {
		if size >= min(coldGroupMax/2, compactBatchBytes) && used > 0 {
			break
		}
		used++
		var hot []coldRecord
		bytesIn := 0
		for k, v := c.Seek(chunkKey(id, p)); len(k) == chunkKeyLen && binary.BigEndian.Uint64(k) == id && chunkKeyMaxTime(k) < p+activeWidth; k, v = c.Next() {
			if chunkKeyMaxTime(k) < retainedFrom {
				continue
			}
			if _, err := chunkValueMinTime(v); err != nil {
				s.m.damagedBlocks.Inc()
				s.logger.Error("damaged stored chunk left uncompacted", "tenant", w.tenantName, "series", id, "err", err)
				continue
			}
			hot = append(hot, coldRecord{id: id, maxTime: chunkKeyMaxTime(k), value: bytes.Clone(v)})
			bytesIn += len(v) + 20
		}
		if len(hot) == 0 {
			continue
		}
		if bytesIn > coldGroupMax/2 {
			s.logger.Warn("series too large for one cold block; its chunks stay uncompacted", "tenant", w.tenantName, "series", id, "partition_start_ms", p, "bytes", bytesIn)
			continue
		}
		size += bytesIn
		key, _, _ := coldBlockFor(pb, id)
		g := groups[string(key)]
		if g == nil && key != nil {
			// The group's block is rebuilt and written again whole:
			// the batch bound counts it as chunks taken in.
			size += coldBlockTarget
		}
		if g == nil {
			g = &coldGroup{key: bytes.Clone(key)}
			groups[string(key)] = g
			order = append(order, string(key))
		}
		g.ids = append(g.ids, id)
		g.hot = append(g.hot, hot...)
	}
	filter := newStoneFilter(stones, w.series)
	for _, name := range order {
		n, err := s.rewriteBlock(w, pb, coldSeries, p, groups[name], filter)
		if err != nil {
			return moved, used, err
		}
		moved += n
	}
	return moved, used, nil
}

// rewriteBlock merges g's chunks into its block and writes the result as
// one or more blocks covering the same series, then deletes the chunks
// from the chunks bucket. A damaged block, or chunks that do not merge,
// leave everything as it was, counted.
func (s *Store) rewriteBlock(w *tenantWriter, pb, coldSeries *bbolt.Bucket, p int64, g *coldGroup, filter *stoneFilter) (int, error) {
	var recs []coldRecord
	if g.key != nil {
		d, err := parseColdBlock(pb.Get(g.key))
		if err != nil {
			s.coldDamaged(w.tenantName, p, g.key, err)
			return 0, nil
		}
		recs = s.readable(w.tenantName, p, g.key, d, nil)
	}
	// A series whose run is carried as it is keeps its new chunks in the
	// chunks bucket, where reads see them: they cannot join the run.
	carried := map[uint64]bool{}
	for _, r := range recs {
		if r.run != nil {
			carried[r.id] = true
		}
	}
	hot := slices.DeleteFunc(slices.Clone(g.hot), func(r coldRecord) bool { return carried[r.id] })
	merged, outside, left, err := mergeRecords(recs, hot, p)
	if err != nil {
		return 0, err
	}
	// A block holds a series whole: one series too large for a block
	// the decoder accepts leaves the group as it is.
	perSeries := map[uint64]int{}
	for _, r := range merged {
		perSeries[r.id] += len(r.value) + len(r.run) + 20
		if perSeries[r.id] > coldGroupMax/2 {
			s.logger.Warn("series too large for one cold block; its chunks stay uncompacted", "tenant", w.tenantName, "series", r.id, "partition_start_ms", p)
			return 0, nil
		}
	}
	for _, r := range left {
		s.m.damagedBlocks.Inc()
		s.logger.Error("stored chunk that does not decode left uncompacted", "tenant", w.tenantName, "series", r.id, "max_time", r.maxTime)
	}
	// Chunks wholly inside a tombstone are not written again: retention
	// would delete them from the chunks bucket.
	touched := map[uint64]bool{}
	merged = slices.DeleteFunc(merged, func(r coldRecord) bool {
		if filter.deleted(r) {
			touched[r.id] = true
			return true
		}
		return false
	})
	if g.key != nil {
		if err := pb.Delete(g.key); err != nil {
			return 0, err
		}
	}
	for start, bytesIn := 0, 0; start < len(merged); {
		end := start
		for end < len(merged) {
			// Cut only between series: a series' records share a block.
			if bytesIn >= coldBlockTarget && merged[end].id != merged[end-1].id {
				break
			}
			bytesIn += len(merged[end].value) + len(merged[end].run) + 20
			end++
		}
		if err := pb.Put(idKey(merged[start].id), encodeColdBlock(merged[start:end])); err != nil {
			return 0, err
		}
		start, bytesIn = end, 0
	}
	moved := 0
	for _, r := range g.hot {
		if carried[r.id] || slices.ContainsFunc(left, func(l coldRecord) bool { return compareRecords(l, r) == 0 }) {
			continue
		}
		if err := w.chunks.Delete(chunkKey(r.id, r.maxTime)); err != nil {
			return 0, err
		}
		moved++
	}
	// A merge's other chunks ending in another partition go back where
	// Put would put them, and mark that partition.
	for _, o := range outside {
		if err := w.putChunk(o.id, o.c); err != nil {
			return 0, err
		}
	}
	newest := map[uint64]int64{}
	for _, id := range g.ids {
		newest[id] = math.MinInt64
	}
	for _, r := range merged {
		if t, ok := newest[r.id]; ok {
			newest[r.id] = max(t, r.maxTime)
		}
	}
	for id, t := range newest {
		if t > readTime(coldSeries, idKey(id)) {
			if err := coldSeries.Put(idKey(id), timeKey(t)); err != nil {
				return 0, err
			}
		}
	}
	return moved, refreshNewest(w.tenant, p, touched)
}

// outsideChunk is a chunk a merge produced that ends outside the
// partition being compacted.
type outsideChunk struct {
	id uint64
	c  Chunk
}

// mergeRecords adds the chunks hot to a block's records, merging a chunk
// with a record of the same series and MaxTime as Put merges two chunks
// under one key (mergeChunk), and returns them sorted. A merge's other
// chunks that end outside partition p are returned apart: a block of p
// holds only chunks ending in p, where reads look for them. A hot chunk
// that does not decode where it must merge is left out (left), to stay
// in the chunks bucket.
func mergeRecords(recs, hot []coldRecord, p int64) (out []coldRecord, outside []outsideChunk, left []coldRecord, err error) {
	byKey := make(map[[2]uint64]int, len(recs)+len(hot))
	out = slices.Clone(recs)
	for k, r := range out {
		byKey[[2]uint64{r.id, uint64(r.maxTime)}] = k
	}
	var add func(id uint64, c Chunk) error
	add = func(id uint64, c Chunk) error {
		if c.MaxTime < p || c.MaxTime >= p+activeWidth {
			outside = append(outside, outsideChunk{id, c})
			return nil
		}
		key := [2]uint64{id, uint64(c.MaxTime)}
		value := encodeChunkValue(c)
		k, ok := byKey[key]
		if !ok {
			byKey[key] = len(out)
			out = append(out, coldRecord{id: id, maxTime: c.MaxTime, value: value})
			return nil
		}
		if bytes.Equal(out[k].value, value) {
			return nil
		}
		merged, changed, err := mergeChunk(out[k].value, c)
		if err != nil || !changed {
			return err
		}
		for _, m := range merged[:len(merged)-1] {
			if err := add(id, m); err != nil {
				return err
			}
		}
		out[k].value = encodeChunkValue(merged[len(merged)-1])
		return nil
	}
	for _, r := range hot {
		c, err := decodeChunk(chunkKey(r.id, r.maxTime), r.value)
		if err != nil {
			return nil, nil, nil, err // compactSeries checked the header
		}
		if _, collides := byKey[[2]uint64{r.id, uint64(r.maxTime)}]; collides {
			if _, err := c.Samples(); err != nil {
				left = append(left, r)
				continue
			}
		}
		if err := add(r.id, c); err != nil {
			return nil, nil, nil, err
		}
	}
	slices.SortFunc(out, compareRecords)
	return out, outside, left, nil
}

// markColdDirty records that partition p of the tenant, already
// compacted, got a chunk in the chunks bucket, for the next Compact.
func (w *tenantWriter) markColdDirty(maxTime int64) error {
	if maxTime < -saneTime || maxTime > saneTime {
		return nil
	}
	cold := w.tenant.Bucket(bucketCold)
	if cold == nil {
		return nil
	}
	p := partitionOf(maxTime)
	if cold.Bucket(timeKey(p)) == nil {
		return nil
	}
	dirty, err := w.tenant.CreateBucketIfNotExists(bucketColdDirty)
	if err != nil {
		return err
	}
	return dirty.Put(timeKey(p), []byte{})
}

// coldRemains reports whether series id keeps a cold chunk ending at or
// after cutoff.
func (w *tenantWriter) coldRemains(id uint64, cutoff int64) bool {
	cs := w.tenant.Bucket(bucketColdSeries)
	return cs != nil && cs.Get(idKey(id)) != nil && readTime(cs, idKey(id)) >= cutoff
}

// forgetCold removes series id from cold_series, once retention deleted
// the series: its records left in blocks are unreachable (IDs are never
// reused) and go with their partitions.
func (w *tenantWriter) forgetCold(id uint64) error {
	if cs := w.tenant.Bucket(bucketColdSeries); cs != nil {
		return cs.Delete(idKey(id))
	}
	return nil
}

// dropCold deletes the cold partitions ending at or before cutoff, whole,
// and hides from reads the cold chunks ending before it, as retention
// deletes such chunks from the chunks bucket. It returns how many chunks
// the deleted partitions held (a block that does not parse counts none; a
// run that would not rebuild counts its chunks).
func dropCold(tb *bbolt.Bucket, cutoff int64) (int, error) {
	cold := tb.Bucket(bucketCold)
	if cold == nil || cutoff == math.MinInt64 {
		return 0, nil
	}
	if cutoff > readTime(tb, keyRetainedFrom) {
		if err := tb.Put(keyRetainedFrom, timeKey(cutoff)); err != nil {
			return 0, err
		}
	}
	var old [][]byte
	c := cold.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil || len(k) != 8 {
			continue
		}
		if p := unsortableTime(binary.BigEndian.Uint64(k)); p > saneTime-activeWidth || p+activeWidth > cutoff {
			break
		}
		old = append(old, bytes.Clone(k))
	}
	dirty, marks := tb.Bucket(bucketColdDirty), tb.Bucket(bucketColdStones)
	deleted := 0
	for _, k := range old {
		if marks != nil {
			if err := marks.Delete(k); err != nil {
				return deleted, err
			}
		}
		_ = cold.Bucket(k).ForEach(func(_, v []byte) error {
			if d, err := parseColdBlock(v); err == nil {
				deleted += d.chunkCount()
			}
			return nil
		})
		if err := cold.DeleteBucket(k); err != nil {
			return deleted, err
		}
		if dirty != nil {
			if err := dirty.Delete(k); err != nil {
				return deleted, err
			}
		}
	}
	return deleted, nil
}

// coldDamaged counts and logs a block that does not decode; its series'
// chunks in that partition are lost to reads, nothing else is.
func (s *Store) coldDamaged(tenant string, p int64, key []byte, err error) {
	s.m.damagedBlocks.Inc()
	s.logger.Error("damaged cold block: its chunks are skipped", "tenant", tenant, "partition_start_ms", p, "first_series", binary.BigEndian.Uint64(key), "err", err)
}

// coldValue returns the value of series id's compacted chunk ending at
// maxTime, nil if there is none.
func (w *tenantWriter) coldValue(id uint64, maxTime int64) []byte {
	if w.tenant.Bucket(bucketCold) == nil {
		return nil
	}
	if w.cold == nil {
		// A damaged block is counted by the reads that meet it; blocks
		// this transaction may rewrite are not cached.
		w.cold = openColdReader(w.tenant, coldEnv{})
	}
	var v []byte
	w.cold.each(id, maxTime, maxTime, func(r coldRecord) bool {
		v = r.value
		return false
	})
	return v
}

// coldEnv is what the tenant's readers share: the block cache, and the
// damage count.
func (s *Store) coldEnv(tenant string) coldEnv {
	return coldEnv{tenant: tenant, blocks: s.blocks, damaged: func(p int64, key []byte, err error) { s.coldDamaged(tenant, p, key, err) }}
}

// stonesHash identifies the tombstones that can hide a whole chunk of
// partition p: those overlapping it; nil when none does.
func stonesHash(stones []Tombstone, p int64) []byte {
	var lines []string
	for _, t := range stones {
		if t.MaxTime >= p && t.MinTime < p+activeWidth {
			lines = append(lines, fmt.Sprintf("%d %d %v", t.MinTime, t.MaxTime, t.Matchers))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	slices.Sort(lines)
	h := fnv.New64a()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// stoneFilter tells whether a record lies wholly inside a tombstone that
// selects its series, looking each series' labels up once.
type stoneFilter struct {
	stones []Tombstone
	series *bbolt.Bucket
	labels map[uint64]labels.Labels
}

func newStoneFilter(stones []Tombstone, series *bbolt.Bucket) *stoneFilter {
	return &stoneFilter{stones: stones, series: series, labels: map[uint64]labels.Labels{}}
}

func (f *stoneFilter) deleted(r coldRecord) bool {
	if len(f.stones) == 0 {
		return false
	}
	minTime, err := chunkValueMinTime(r.value)
	if err != nil {
		return false
	}
	ls := f.labelsOf(r.id)
	for _, t := range f.stones {
		if t.MinTime <= minTime && r.maxTime <= t.MaxTime && t.Matches(ls) {
			return true
		}
	}
	return false
}

// selects tells whether a tombstone selects series id at all, so that a
// rewrite rebuilds only the runs it may cut.
func (f *stoneFilter) selects(id uint64) bool {
	ls := f.labelsOf(id)
	for _, t := range f.stones {
		if t.Matches(ls) {
			return true
		}
	}
	return false
}

func (f *stoneFilter) labelsOf(id uint64) labels.Labels {
	ls, ok := f.labels[id]
	if !ok {
		if raw := f.series.Get(idKey(id)); raw != nil {
			if pairs, err := decodeLabels(nil, string(raw)); err == nil {
				ls = labels.New(pairs...)
			}
		}
		f.labels[id] = ls
	}
	return ls
}

// applyStonesToCold deletes from the tenant's cold partitions the chunks
// wholly inside a tombstone selecting their series, as retention deletes
// such chunks from the chunks bucket, and returns how many. A partition
// is read only when tombstones overlap it and they changed since it was
// last cleaned (cold_stones), a batch of blocks per transaction; the mark
// is written after the last batch, and compaction, which may write chunks
// with an older view of the tombstones, clears it.
func (s *Store) applyStonesToCold(tenant string, stones []Tombstone) (int, error) {
	var parts []int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
		if tb == nil || tb.Bucket(bucketCold) == nil {
			return nil
		}
		done := tb.Bucket(bucketColdStones)
		return tb.Bucket(bucketCold).ForEachBucket(func(k []byte) error {
			if len(k) != 8 {
				return nil
			}
			p := unsortableTime(binary.BigEndian.Uint64(k))
			h := stonesHash(stones, p)
			if h != nil && (done == nil || !bytes.Equal(done.Get(k), h)) {
				parts = append(parts, p)
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, p := range parts {
		n, err := s.cleanPartition(tenant, p, stones)
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("partition %d: %w", p, err)
		}
	}
	return deleted, nil
}

// cleanPartition rewrites the blocks of partition p holding chunks wholly
// inside a tombstone, without them, about compactBatchBytes of blocks per
// transaction, refreshes cold_series for their series, and marks the
// partition clean. A damaged block is left as it is.
func (s *Store) cleanPartition(tenant string, p int64, stones []Tombstone) (int, error) {
	deleted := 0
	for from, done := []byte(nil), false; !done; {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			done = true
			tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
			if tb == nil || tb.Bucket(bucketCold) == nil || tb.Bucket(bucketCold).Bucket(timeKey(p)) == nil {
				return nil
			}
			pb := tb.Bucket(bucketCold).Bucket(timeKey(p))
			filter := newStoneFilter(stones, tb.Bucket(bucketSeries))
			type rewrite struct {
				key  []byte
				keep []coldRecord
			}
			var rewrites []rewrite
			touched := map[uint64]bool{}
			c := pb.Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for size := 0; k != nil; k, v = c.Next() {
				if size >= min(coldGroupMax/2, compactBatchBytes) {
					from, done = bytes.Clone(k), false
					break
				}
				d, err := parseColdBlock(v)
				if err != nil || len(k) != idLen {
					size += len(v)
					continue
				}
				// Decompressed, with the chunks its runs rebuild into
				// counted as coldBlockTarget at most: what is encoded again.
				size += max(d.size, coldBlockTarget)
				recs := s.readable(tenant, p, k, d, filter.selects)
				keep := recs[:0:0]
				for _, r := range recs {
					if filter.deleted(r) {
						touched[r.id] = true
						continue
					}
					keep = append(keep, r)
				}
				if len(keep) < len(recs) {
					deleted += len(recs) - len(keep)
					rewrites = append(rewrites, rewrite{bytes.Clone(k), keep})
				}
			}
			for _, rw := range rewrites {
				if err := pb.Delete(rw.key); err != nil {
					return err
				}
				// The kept records start at or after the old key and end
				// before the next block's: one block under the first's
				// ID keeps the lookup rule.
				if len(rw.keep) > 0 {
					if err := pb.Put(idKey(rw.keep[0].id), encodeColdBlock(rw.keep)); err != nil {
						return err
					}
				}
			}
			if err := refreshNewest(tb, p, touched); err != nil {
				return err
			}
			if !done {
				return nil
			}
			marks, err := tb.CreateBucketIfNotExists(bucketColdStones)
			if err != nil {
				return err
			}
			return marks.Put(timeKey(p), stonesHash(stones, p))
		})
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// refreshNewest corrects cold_series for the series of touched, some of
// whose chunks in partition p were deleted: where its newest compacted
// chunk was one of them, the newest left replaces it, found in p or in
// the nearest partition before p that has one; none left, the entry goes.
func refreshNewest(tb *bbolt.Bucket, p int64, touched map[uint64]bool) error {
	cs := tb.Bucket(bucketColdSeries)
	if cs == nil || len(touched) == 0 {
		return nil
	}
	retainedFrom := readTime(tb, keyRetainedFrom)
	cold := tb.Bucket(bucketCold)
	for _, id := range slices.Sorted(maps.Keys(touched)) {
		newest := readTime(cs, idKey(id))
		if newest == math.MinInt64 || partitionOf(newest) != p {
			continue // its newest compacted chunk is elsewhere, and stays
		}
		found, t := false, int64(math.MinInt64)
		c := cold.Cursor()
		k, v := c.Seek(timeKey(p))
		if k == nil || !bytes.Equal(k, timeKey(p)) {
			k, v = c.Prev()
		}
		for ; k != nil && !found; k, v = c.Prev() {
			if v != nil || len(k) != 8 {
				continue
			}
			pb := cold.Bucket(k)
			key, value, _ := coldBlockFor(pb, id)
			if key == nil {
				continue
			}
			d, err := parseColdBlock(value)
			if err != nil || d.find(id) == nil {
				continue
			}
			recs, err := d.find(id).records()
			if err != nil {
				continue
			}
			for _, r := range recs {
				if r.maxTime <= newest && r.maxTime >= retainedFrom {
					found, t = true, max(t, r.maxTime)
				}
			}
			if unsortableTime(binary.BigEndian.Uint64(k)) < retainedFrom {
				break
			}
		}
		var err error
		if found {
			err = cs.Put(idKey(id), timeKey(t))
		} else {
			err = cs.Delete(idKey(id))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
