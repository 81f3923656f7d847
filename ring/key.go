package ring

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// sep separates the hashed fields; 0xff never occurs in UTF-8, so two
// different (tenant, labels) pairs never feed the hash the same bytes.
var sep = []byte{0xff}

// ShardKey is the place of a series on the ring: xxhash64 of tenant, 0xff,
// then every label name and value each followed by 0xff, folded to 32 bits.
// ls must be sorted (labels.Labels always is). The function is part of the
// on-disk and on-wire contract: changing it moves every series, so it
// never changes.
func ShardKey(tenant string, ls labels.Labels) uint32 {
	var h ShardHasher
	h.Reset(tenant)
	ls.Range(func(l labels.Label) {
		_, _ = h.d.WriteString(l.Name)
		_, _ = h.d.Write(sep)
		_, _ = h.d.WriteString(l.Value)
		_, _ = h.d.Write(sep)
	})
	return h.Sum()
}

// ShardHasher computes ShardKey label by label, for callers that hold labels
// as byte slices and must not allocate a labels.Labels per series.
type ShardHasher struct{ d xxhash.Digest }

// Reset starts the key of a series of tenant.
func (h *ShardHasher) Reset(tenant string) {
	h.d.Reset()
	_, _ = h.d.WriteString(tenant)
	_, _ = h.d.Write(sep)
}

// Add adds the next label; labels must come sorted by name.
func (h *ShardHasher) Add(name, value []byte) {
	_, _ = h.d.Write(name)
	_, _ = h.d.Write(sep)
	_, _ = h.d.Write(value)
	_, _ = h.d.Write(sep)
}

// Sum is the series' ShardKey.
func (h *ShardHasher) Sum() uint32 {
	s := h.d.Sum64()
	return uint32(s) ^ uint32(s>>32)
}
