package runchunk

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// auditPackedRoundTrip checks that readPacked gives back exactly what
// appendPacked wrote, consumes exactly its bytes, and leaves a trailer alone.
func auditPackedRoundTrip(t *testing.T, vs []uint64) {
	t.Helper()
	enc := appendPacked([]byte{0xAA}, vs)[1:]
	enc = append(enc, 0xEE, 0xFF) // trailer
	sc := new(oracle)
	got, rest, err := sc.readPacked(enc, len(vs))
	if err != nil {
		t.Fatalf("readPacked(%d values): %v", len(vs), err)
	}
	if len(rest) != 2 || rest[0] != 0xEE || rest[1] != 0xFF {
		t.Fatalf("readPacked left %x, want eeff", rest)
	}
	if len(got) != len(vs) {
		t.Fatalf("got %d values, want %d", len(got), len(vs))
	}
	for i := range vs {
		if got[i] != vs[i] {
			t.Fatalf("value %d: got %d, want %d (n=%d)", i, int64(got[i]), int64(vs[i]), len(vs))
		}
	}
}

var auditExtremes = []int64{0, 1, -1, 2, -2, math.MinInt64, math.MinInt64 + 1, math.MaxInt64, math.MaxInt64 - 1,
	1 << 32, -1 << 32, 1<<56 - 1, 1 << 56, 1 << 57, -1 << 56, -1 << 57, 1<<63 - 1<<8}

// TestAudit3PackedEdges: groups of 0, 1, 127, 128, 129 values; every pair
// and triple of extreme values (widths 0..64, base MinInt64 as a 10-byte
// varint, v-base overflowing int64, the w>56 two-halves path with a base).
func TestAudit3PackedEdges(t *testing.T) {
	auditPackedRoundTrip(t, nil)
	for _, a := range auditExtremes {
		auditPackedRoundTrip(t, []uint64{uint64(a)})
		for _, b := range auditExtremes {
			auditPackedRoundTrip(t, []uint64{uint64(a), uint64(b)})
			for _, c := range auditExtremes {
				auditPackedRoundTrip(t, []uint64{uint64(a), uint64(b), uint64(c)})
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 127, 128, 129, 255, 256, 257, 1000} {
		for w := 0; w <= 64; w++ {
			for _, base := range auditExtremes {
				vs := make([]uint64, n)
				for i := range vs {
					vs[i] = uint64(base) + r.Uint64()&mask(w)
				}
				auditPackedRoundTrip(t, vs)
			}
		}
	}
}

// FuzzAudit3Packed: arbitrary int64 values (8 bytes each, plus a width
// mask and a base so the fuzzer reaches every width) round trip.
func FuzzAudit3Packed(f *testing.F) {
	f.Add([]byte{}, uint8(64), int64(0))
	f.Add(make([]byte, 8*130), uint8(0), int64(math.MinInt64))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 255, 255, 255, 255, 255, 255, 255, 255}, uint8(60), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, raw []byte, w uint8, base int64) {
		vs := make([]uint64, len(raw)/8)
		for i := range vs {
			vs[i] = uint64(base) + binary.LittleEndian.Uint64(raw[8*i:])&mask(int(w%65))
		}
		auditPackedRoundTrip(t, vs)
	})
}

// FuzzAudit3ReadPackedCrafted: readPacked on any bytes and any count
// does not panic, consumes no more than it has, and errors with ErrCorrupt.
func FuzzAudit3ReadPackedCrafted(f *testing.F) {
	f.Add([]byte{0, 0}, uint16(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 64}, uint16(128))
	f.Add(appendPacked(nil, []uint64{1, 2, math.MaxUint64}), uint16(3))
	f.Fuzz(func(t *testing.T, src []byte, n uint16) {
		sc := new(oracle)
		got, rest, err := sc.readPacked(src, int(n))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if len(got) != int(n) || len(rest) > len(src) {
			t.Fatalf("got %d values (want %d), rest %d of %d", len(got), n, len(rest), len(src))
		}
		// What was read round trips through appendPacked.
		auditPackedRoundTrip(t, got)
	})
}
