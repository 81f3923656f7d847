package store

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/runchunk/runchunktest"
)

// TestAudit2CarriedBudgetRoundTrip: a block whose runs use almost all of
// the budget, rewritten with some runs carried and the others rebuilt and
// grown (more chunks) or shrunk (chunks deleted), in several orders,
// encodes to a block that parses, keeps every carried run byte for byte,
// and rebuilds every other series' records.
func TestAudit2CarriedBudgetRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var recs []coldRecord
	const per = 50_000
	for id := uint64(1); id <= 30; id++ {
		c := runchunktest.Case{T: make([]int64, per+600), V: make([]float64, per+600)}
		v := 0.0
		for i := range c.T {
			c.T[i] = int64(i)*1000 + 1
			v += float64(rng.IntN(5))
			c.V[i] = v
		}
		recs = append(recs, recordsOf(t, id, c, 120)...)
	}
	// The block as compaction writes it: the first per+? samples of each.
	var base []coldRecord
	extra := map[uint64][]coldRecord{}
	for _, r := range recs {
		if r.maxTime < per*1000 {
			base = append(base, r)
		} else {
			extra[r.id] = append(extra[r.id], r)
		}
	}
	v := encodeColdBlock(base)
	d, err := parseColdBlock(v)
	require.NoError(t, err)
	runs := 0
	for _, s := range d.series {
		if s.run != nil {
			runs++
		}
	}
	t.Logf("%d of %d series are runs", runs, len(d.series))
	for mode := range 4 {
		var out []coldRecord
		carried := map[uint64][]byte{}
		for k, s := range d.series {
			if s.run != nil && (k+mode)%2 == 0 {
				out = append(out, coldRecord{id: s.id, maxTime: math.MinInt64, run: s.run})
				carried[s.id] = s.run
				continue
			}
			got, err := s.records()
			require.NoError(t, err)
			switch mode {
			case 0, 1: // grown: late chunks merged in
				out = append(out, got...)
				out = append(out, extra[s.id]...)
			default: // shrunk: a tombstone took the first chunks
				out = append(out, got[len(got)/3:]...)
			}
		}
		nv := encodeColdBlock(out)
		nd, err := parseColdBlock(nv)
		require.NoError(t, err, "mode %d", mode)
		for _, s := range nd.series {
			if run, ok := carried[s.id]; ok {
				require.Equal(t, run, s.run, "mode %d: series %d carried", mode, s.id)
				continue
			}
			_, err := s.records()
			require.NoError(t, err, "mode %d series %d", mode, s.id)
		}
		require.Len(t, nd.series, len(d.series))
	}
}
