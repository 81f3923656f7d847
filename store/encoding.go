package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.etcd.io/bbolt"

	"github.com/orrery/orrery/ingester/chunks"
)

// Bucket and key names; FORMAT.md describes every byte stored under them.
var (
	bucketMeta           = []byte("meta")
	bucketTenants        = []byte("tenants")
	bucketSeries         = []byte("series")
	bucketSeriesByHash   = []byte("series_by_hash")
	bucketSeriesByLabels = []byte("series_by_labels") // before version 6
	bucketPostings       = []byte("postings")
	bucketChunks         = []byte("chunks")
	keyFormatVersion     = []byte("format_version")
	keyMaxChunkSpan      = []byte("max_chunk_span")
	bucketDeletions      = []byte("deletions")
	bucketTombstones     = []byte("tombstones")
	keyGeneration        = []byte("generation")
	bucketActive         = []byte("active")
	keyActiveFrom        = []byte("active_from")
	keyUnlistedBefore    = []byte("unlisted_before")
	keyRetentionLate     = []byte("retention_late")
	bucketRetired        = []byte("retired")
)

// formatVersion is bumped on any incompatible change to FORMAT.md, so that
// an old binary refuses a newer file instead of misreading it. Version 2
// added the deletions bucket (a version 1 binary would ignore it and serve
// deleted samples again); version 3 the active index (an older binary
// would not list the chunks it stores there, and selects would miss them);
// version 4 cold partitions (an older binary would not read the chunks
// compaction moved into them); version 5 cold blocks of version 2, which
// hold runs (a version 4 binary would count every such block damaged);
// version 6 postings and active partitions as segments of IDs (an older
// binary would read a segment as its first ID alone) and series_by_hash.
// Open upgrades any earlier version in place.
const formatVersion uint32 = 6

const (
	idLen          = 8
	chunkKeyLen    = idLen + 8
	chunkHeaderLen = 8 + 1
)

// errCorrupt is the chunks contract's: corruption looks the same from every store.
var errCorrupt = chunks.ErrCorrupt

// sortableTime maps int64 to uint64 so that big-endian byte order equals
// numeric order, negative timestamps included.
func sortableTime(t int64) uint64 { return uint64(t) ^ (1 << 63) }

func unsortableTime(u uint64) int64 { return int64(u ^ (1 << 63)) }

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, idLen), id) }

func chunkKey(id uint64, maxTime int64) []byte {
	k := make([]byte, chunkKeyLen)
	binary.BigEndian.PutUint64(k, id)
	binary.BigEndian.PutUint64(k[idLen:], sortableTime(maxTime))
	return k
}

// chunkKeyMaxTime returns the MaxTime of a chunk key.
func chunkKeyMaxTime(k []byte) int64 { return unsortableTime(binary.BigEndian.Uint64(k[idLen:])) }

func encodeChunkValue(c Chunk) []byte {
	v := make([]byte, chunkHeaderLen, chunkHeaderLen+len(c.Data))
	binary.BigEndian.PutUint64(v, sortableTime(c.MinTime))
	v[8] = byte(c.Encoding)
	return append(v, c.Data...)
}

func chunkValueMinTime(v []byte) (int64, error) {
	if len(v) < chunkHeaderLen {
		return 0, fmt.Errorf("chunk value of %d bytes: %w", len(v), errCorrupt)
	}
	return unsortableTime(binary.BigEndian.Uint64(v)), nil
}

// decodeChunk copies the chunk out of v, which bbolt owns.
func decodeChunk(k, v []byte) (Chunk, error) {
	minTime, err := chunkValueMinTime(v)
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{
		MinTime:  minTime,
		MaxTime:  chunkKeyMaxTime(k),
		Encoding: chunkenc.Encoding(v[8]),
		Data:     bytes.Clone(v[chunkHeaderLen:]),
	}, nil
}

// chunkSpan is MaxTime-MinTime, saturated so that extreme timestamps
// cannot overflow.
func chunkSpan(c Chunk) int64 {
	d := uint64(c.MaxTime) - uint64(c.MinTime)
	if d > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(d)
}

// appendLabels encodes sorted labels as uvarint-length-prefixed name and
// value pairs. Length prefixes keep the encoding injective whatever bytes the
// names and values hold, so equal encodings are equal series.
func appendLabels(buf []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		buf = binary.AppendUvarint(buf, uint64(len(l.Name)))
		buf = append(buf, l.Name...)
		buf = binary.AppendUvarint(buf, uint64(len(l.Value)))
		buf = append(buf, l.Value...)
	})
	return buf
}

// decodeLabels appends the pairs encoded in s to dst. The strings point into
// s, so they live exactly as long as s does.
func decodeLabels(dst []labels.Label, s string) ([]labels.Label, error) {
	for len(s) > 0 {
		var name, value string
		var err error
		if name, s, err = decodeString(s); err != nil {
			return dst, err
		}
		if value, s, err = decodeString(s); err != nil {
			return dst, err
		}
		dst = append(dst, labels.Label{Name: name, Value: value})
	}
	return dst, nil
}

func decodeString(s string) (str, rest string, err error) {
	n, w := binary.Uvarint(unsafe.Slice(unsafe.StringData(s), len(s)))
	if w <= 0 || n > uint64(len(s)-w) {
		return "", "", fmt.Errorf("labels: %w", errCorrupt)
	}
	end := w + int(n)
	return s[w:end], s[end:], nil
}

// yoloString views b as a string without copying. Only for bbolt memory
// read inside the same transaction and never retained past it: matching
// candidates this way avoids copying the labels of series that are dropped.
func yoloString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// buildLabels turns decoded pairs into Labels. The pairs must point into
// memory the caller owns (not bbolt's), as some labels implementations keep
// the strings.
func buildLabels(b *labels.ScratchBuilder, ls []labels.Label) labels.Labels {
	b.Reset()
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

func getLabel(ls []labels.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// postingNamePrefix is the part of a postings key shared by all values of
// name. The name is length-prefixed because UTF-8 label names may contain
// any byte, so no separator could end it unambiguously.
func postingNamePrefix(name string) []byte {
	buf := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(name)), uint64(len(name)))
	return append(buf, name...)
}

// postingValuePrefix is the part of a postings key shared by all series
// with name=value. The 0x00 terminator sorts a value before its extensions,
// keeping equality scans short; a value that itself contains 0x00 is told
// apart by the key length (idSet.member).
func postingValuePrefix(name, value string) []byte {
	buf := append(postingNamePrefix(name), value...)
	return append(buf, 0)
}

// seriesHashKey is a series_by_hash key: the first 8 bytes of the SHA-256
// of the series' encoded labels, then its ID. Whoever writes series
// chooses their labels, and a lookup reads every series under its hash:
// with a hash whose collisions can be computed (xxHash's can, in
// milliseconds: TestSeriesByHashCollisionsCannotBeChosen), a writer could
// put thousands of series under one and make every Put walk them all.
// With SHA-256, two labels sets of one 8-byte hash take about 2^32
// hashes to find and cost a lookup one more comparison; many of them are
// out of reach. It costs about 170 ns a lookup against xxHash's 20.
func seriesHashKey(encoded []byte, id uint64) []byte {
	h := sha256.Sum256(encoded)
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 2*idLen), h[:idLen]...), id)
}

// lookupSeries returns the ID of the series whose encoded labels are
// encoded: series_by_hash lists the IDs under the labels' hash, and the
// series bucket tells the ones whose hashes collide apart.
func lookupSeries(byHash, series *bbolt.Bucket, encoded []byte) (uint64, bool, error) {
	prefix := seriesHashKey(encoded, 0)[:idLen]
	c := byHash.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != 2*idLen {
			return 0, false, fmt.Errorf("series_by_hash key of %d bytes: %w", len(k), errCorrupt)
		}
		id := keyID(k)
		if bytes.Equal(series.Get(idKey(id)), encoded) {
			return id, true, nil
		}
	}
	return 0, false, nil
}

// keyID returns the ID a key ends with: a segment's first (idSet).
func keyID(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-idLen:]) }

// postingValue returns the value of a postings key that starts with
// namePrefix.
func postingValue(k, namePrefix []byte) ([]byte, bool) {
	end := len(k) - idLen - 1
	if end < len(namePrefix) || k[end] != 0 {
		return nil, false
	}
	return k[len(namePrefix):end], true
}
