package store

import (
	"container/list"
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// blockCache keeps decoded cold blocks across reads, up to a byte budget,
// least recently used out first, so that dashboards reading the same cold
// data again do not decompress it again. An entry is keyed by the block's
// place (tenant, partition, first series) and a 64-bit hash of its stored
// bytes, so a rewritten block never hits an entry of the one it replaced.
// Entries are shared and read-only: readers copy what they hand out.
type blockCache struct {
	budget int
	seed   maphash.Seed

	mu      sync.Mutex
	size    int
	lru     *list.List // of *cacheEntry, most recent first
	entries map[string]*list.Element

	requests *prometheus.CounterVec
}

type cacheEntry struct {
	key  string
	data *blockData
	size int
}

func newBlockCache(budget int) *blockCache {
	return &blockCache{
		budget: budget, seed: maphash.MakeSeed(), lru: list.New(), entries: map[string]*list.Element{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_store_block_cache_requests_total",
			Help: "Reads of a cold block, by whether its decoded form was in the cache (hit) or decompressed (miss).",
		}, []string{"result"}),
	}
}

// key names block value v, stored under blockKey in tenant's partition p.
func (c *blockCache) key(tenant string, p int64, blockKey, v []byte) string {
	k := make([]byte, 0, len(tenant)+1+8+len(blockKey)+8)
	k = append(k, tenant...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(p))
	k = append(k, blockKey...)
	return string(binary.BigEndian.AppendUint64(k, maphash.Bytes(c.seed, v)))
}

// get returns the decoded block value v, decoding it on a miss.
func (c *blockCache) get(tenant string, p int64, blockKey, v []byte) (*blockData, error) {
	if c == nil || c.budget <= 0 {
		return parseColdBlock(v)
	}
	key := c.key(tenant, p, blockKey, v)
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*cacheEntry).data
		c.mu.Unlock()
		c.requests.WithLabelValues("hit").Inc()
		return data, nil
	}
	c.mu.Unlock()
	c.requests.WithLabelValues("miss").Inc()
	data, err := parseColdBlock(v)
	if err != nil {
		return nil, err
	}
	size := len(key) + 64 + data.size
	if size+data.rebuilt > c.budget/4 {
		return data, nil // one block must not empty the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		el := c.lru.PushFront(&cacheEntry{key: key, data: data, size: size})
		c.entries[key] = el
		c.size += size
		// Set before any other read can find the block (under mu).
		data.grew = func(n int) { c.grow(el, n) }
		c.evict()
	}
	return data, nil
}

// grow charges entry el for n more bytes (a run rebuilt into chunks). An
// entry no longer cached is not charged; one grown past a quarter of the
// budget goes, as a block that large is never cached.
func (c *blockCache) grow(el *list.Element, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := el.Value.(*cacheEntry)
	if c.entries[e.key] != el {
		return
	}
	e.size += n
	c.size += n
	if e.size > c.budget/4 {
		c.lru.Remove(el)
		delete(c.entries, e.key)
		c.size -= e.size
	}
	c.evict()
}

// evict drops the least recently used entries while over budget; c.mu is
// held.
func (c *blockCache) evict() {
	for c.size > c.budget {
		last := c.lru.Back()
		e := last.Value.(*cacheEntry)
		c.lru.Remove(last)
		delete(c.entries, e.key)
		c.size -= e.size
	}
}
