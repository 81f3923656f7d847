package store

import (
	"testing"
	"unsafe"
)

// TestAudit2ChargedStructSizes: the block cache charges each record and
// series entry what the structs take (the audit found 48 and 64 B charged
// for 64 and 120), so the budget bounds what the cache holds.
func TestAudit2ChargedStructSizes(t *testing.T) {
	rec, ser := int(unsafe.Sizeof(coldRecord{})), int(unsafe.Sizeof(blockSeries{}))+8 // + its pointer in series
	if recordSize < rec || seriesEntrySize < ser {
		t.Errorf("records cost %d B, charged %d; series entries %d B, charged %d", rec, recordSize, ser, seriesEntrySize)
	}
}
