package frontend

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/orrery/orrery/querier/resultcodec"
	"github.com/prometheus/prometheus/promql"
)

// Cache stores encoded results by key. Implementations are safe for
// concurrent use; a failing cache answers misses and drops stores, since
// the frontend can always recompute.
type Cache interface {
	// Fetch returns the values found; missing keys are absent. The caller
	// owns the returned slices.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Store keeps the values for ttl. The cache owns them afterwards.
	Store(ctx context.Context, values map[string][]byte, ttl time.Duration)
}

// MemoryCache is a Cache in memory, bounded in bytes (keys and values),
// evicting the least recently used entries first.
type MemoryCache struct {
	maxBytes int64
	now      func() time.Time

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *memEntry, most recently used first
	entries map[string]*list.Element
}

type memEntry struct {
	key     string
	value   []byte
	expires time.Time
}

// entryOverhead approximates an entry's bookkeeping bytes beyond its key
// and value, so many tiny entries still count against the bound.
const entryOverhead = 64

// NewMemoryCache returns an empty cache of at most maxBytes.
func NewMemoryCache(maxBytes int64) *MemoryCache {
	return &MemoryCache{maxBytes: maxBytes, now: time.Now, lru: list.New(), entries: map[string]*list.Element{}}
}

func (c *MemoryCache) Fetch(_ context.Context, keys []string) map[string][]byte {
	out := map[string][]byte{}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, k := range keys {
		el, ok := c.entries[k]
		if !ok {
			continue
		}
		e := el.Value.(*memEntry)
		if now.After(e.expires) {
			c.remove(el)
			continue
		}
		c.lru.MoveToFront(el)
		out[k] = append([]byte(nil), e.value...)
	}
	return out
}

func (c *MemoryCache) Store(_ context.Context, values map[string][]byte, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	expires := c.now().Add(ttl)
	for k, v := range values {
		if el, ok := c.entries[k]; ok {
			c.remove(el)
		}
		size := entrySize(k, v)
		if size > c.maxBytes {
			continue
		}
		c.entries[k] = c.lru.PushFront(&memEntry{key: k, value: v, expires: expires})
		c.size += size
		for c.size > c.maxBytes {
			c.remove(c.lru.Back())
		}
	}
}

// Size is the bytes the cache holds, as counted against its bound.
func (c *MemoryCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *MemoryCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*memEntry)
	delete(c.entries, e.key)
	c.size -= entrySize(e.key, e.value)
}

func entrySize(k string, v []byte) int64 { return int64(len(k) + len(v) + entryOverhead) }

// extent is a cached result of a query's steps start..end (both steps):
// every step in it was evaluated, and a series without a point at a step
// had none.
type extent struct {
	start, end int64
	matrix     promql.Matrix
}

// Cached values are extents, each a matrix in resultcodec's form:
//
//	value   = version:byte count:uvarint extent*
//	extent  = start:varint end:varint matrix (point times from start)
const extentsVersion = 1

func encodeExtents(exts []extent) []byte {
	size := 16
	for _, e := range exts {
		size += 16 + resultcodec.MatrixSize(e.matrix)
	}
	b := make([]byte, 0, size)
	b = append(b, extentsVersion)
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for _, e := range exts {
		b = binary.AppendVarint(b, e.start)
		b = binary.AppendVarint(b, e.end)
		b = resultcodec.AppendMatrix(b, e.start, e.matrix)
	}
	return b
}

var errCorrupt = errors.New("corrupt cached extents")

// decodeExtents reads encodeExtents' output; anything else is an error,
// never a panic: the bytes come from a shared cache.
func decodeExtents(b []byte) ([]extent, error) {
	if len(b) == 0 || b[0] != extentsVersion {
		return nil, errCorrupt
	}
	r := resultcodec.NewReader(b[1:])
	exts := make([]extent, r.Count(3))
	for k := range exts {
		e := &exts[k]
		e.start, e.end = r.Varint(), r.Varint()
		e.matrix = r.Matrix(e.start)
		if r.Err() != nil || e.end < e.start {
			return nil, errCorrupt
		}
	}
	if r.Done() != nil {
		return nil, errCorrupt
	}
	return exts, nil
}

// gaps returns the sub-ranges of start..end (steps of step) that no extent
// covers, each starting and ending on a step.
func gaps(exts []extent, start, end, step int64) []span {
	var out []span
	t := start
	for t <= end {
		covered := false
		for _, e := range exts {
			if e.start <= t && t <= e.end && floorMod(e.start-t, step) == 0 {
				// Skip to the first step after the extent.
				t = lastStep(t, e.end, step) + step
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		// t is missing: the gap runs to the step before the next extent
		// that starts on the grid after t.
		next := end + step
		for _, e := range exts {
			if e.start > t && e.start < next && floorMod(e.start-t, step) == 0 {
				next = e.start
			}
		}
		out = append(out, span{t, next - step})
		t = next
	}
	return out
}

// mergeExtents joins extents that overlap or touch (the next starts one
// step after the previous ends) into one.
func mergeExtents(exts []extent, step int64) []extent {
	sorted := append([]extent(nil), exts...)
	sortExtents(sorted)
	var out []extent
	for _, e := range sorted {
		if n := len(out); n > 0 && e.start <= out[n-1].end+step {
			last := &out[n-1]
			last.matrix = mergeMatrices(last.matrix, e.matrix)
			last.end = max(last.end, e.end)
			continue
		}
		out = append(out, e)
	}
	return out
}

func sortExtents(exts []extent) {
	for i := 1; i < len(exts); i++ {
		for j := i; j > 0 && exts[j].start < exts[j-1].start; j-- {
			exts[j], exts[j-1] = exts[j-1], exts[j]
		}
	}
}
