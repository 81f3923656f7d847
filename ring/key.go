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
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(tenant)
	_, _ = d.Write(sep)
	ls.Range(func(l labels.Label) {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	h := d.Sum64()
	return uint32(h) ^ uint32(h>>32)
}
