package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// FuzzAuditParseBlock: any decompressed bytes behind a valid header and
// CRC parse and rebuild without a panic, and what rebuilds is ordered.
func FuzzAuditParseBlock(f *testing.F) {
	rng := rand.New(rand.NewPCG(31, 32))
	var recs []coldRecord
	for k, c := range runchunktest.Cases(rng)[:10] {
		recs = append(recs, recordsOf(f, uint64(k+1), c, 50)...)
	}
	v := encodeColdBlock(recs)
	raw, err := zstdDec.DecodeAll(v[coldHeaderLen:], nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw, false)
	f.Add(raw[:len(raw)/2], false)
	f.Fuzz(func(t *testing.T, raw []byte, v1 bool) {
		version := byte(coldBlockVersion)
		if v1 {
			version = coldBlockChunksOnly
		}
		d, err := parseColdBlock(sealColdBlock(version, raw))
		if err != nil {
			return
		}
		total := 0
		for _, s := range d.series {
			total += s.samples
			recs, err := s.records()
			if err != nil {
				continue
			}
			if len(recs) != s.chunks {
				t.Fatalf("series %d: %d records, %d counted", s.id, len(recs), s.chunks)
			}
			for i, r := range recs {
				if i > 0 && recs[i-1].maxTime >= r.maxTime {
					t.Fatalf("records out of order")
				}
				if mt, err := chunkValueMinTime(r.value); err != nil || mt > r.maxTime {
					t.Fatalf("bad record")
				}
			}
		}
		if total > runBlockSamples {
			t.Fatalf("%d samples", total)
		}
	})
}

// TestAuditRunEdgeCases: extreme times, full chunks, one-sample chunks and
// odd floats come back from a block bit for bit (run or chunks).
func TestAuditRunEdgeCases(t *testing.T) {
	nan := func(payload uint64) float64 { return math.Float64frombits(0x7ff0000000000000 | payload) }
	cases := []runchunktest.Case{
		{Name: "overflowing first delta", T: []int64{math.MinInt64 + 1, math.MaxInt64 - 1}, V: []float64{1, 2}},
		{Name: "overflowing later delta", T: []int64{math.MinInt64, math.MinInt64 + 1, math.MaxInt64}, V: []float64{1, 2, 3}},
		{Name: "dod overflow", T: []int64{-5, 0, math.MaxInt64 / 2, math.MaxInt64 - 3, math.MaxInt64}, V: []float64{0, 0, 0, 0, 0}},
		{Name: "nan payloads", T: []int64{1, 2, 3, 4, 5, 6}, V: []float64{nan(1), nan(1 << 51), nan(0xfffffffffffff), math.Copysign(nan(7), -1), math.Float64frombits(value.StaleNaN), math.NaN()}},
		{Name: "zeros and subnormals", T: []int64{1, 2, 3, 4, 5, 6, 7}, V: []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, math.SmallestNonzeroFloat64 * 3, 0, math.Copysign(0, -1)}},
	}
	full := runchunktest.Case{Name: "65535 then 1"}
	for k := range math.MaxUint16 + 1 {
		full.T = append(full.T, int64(k)*15_000)
		full.V = append(full.V, float64(k%1000)/10)
	}
	for _, c := range cases {
		for _, size := range []int{1, 2, 3, 200} {
			recs := recordsOf(t, 3, c, size)
			got, err := decodeColdBlock(encodeColdBlock(recs))
			require.NoError(t, err, c.Name)
			require.Equal(t, recs, got, c.Name)
		}
	}
	recs := recordsOf(t, 3, full, math.MaxUint16)
	run, _, ok := encodeRun(recs, runBlockSamples)
	require.True(t, ok)
	require.NotEmpty(t, run)
	got, err := decodeColdBlock(encodeColdBlock(recs))
	require.NoError(t, err)
	require.Equal(t, recs, got)
}
