package querier

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
)

func digestsOf(id string, entries ...[3]uint64) digested {
	r := &ingesterpb.DigestResponse{}
	for _, e := range entries {
		r.Hashes = append(r.Hashes, e[0])
		r.Digests = append(r.Digests, e[1])
		r.Samples = append(r.Samples, int64(e[2]))
	}
	return digested{inst: &ringpb.Instance{Id: id}, resp: r}
}

// Each series is evaluated by exactly one replica that holds it when
// every replica holding it agrees, and merged here otherwise; the load
// spreads over the replicas.
func TestDesignate(t *testing.T) {
	d, err := designate([]digested{
		digestsOf("a", [3]uint64{1, 10, 5}, [3]uint64{2, 20, 5}, [3]uint64{3, 30, 5}, [3]uint64{5, 50, 5}, [3]uint64{7, 70, 1}, [3]uint64{7, 71, 1}),
		digestsOf("b", [3]uint64{1, 10, 5}, [3]uint64{2, 21, 6}, [3]uint64{3, 30, 5}, [3]uint64{4, 40, 9}),
		digestsOf("c", [3]uint64{1, 10, 5}, [3]uint64{3, 30, 5}, [3]uint64{6, 60, 2}),
	})
	require.NoError(t, err)
	// 2 differs between a and b; 7 is two series on a (one hash).
	require.Equal(t, []uint64{2, 7}, d.merge)
	var all []uint64
	for k, hs := range d.evaluate {
		require.IsIncreasing(t, hs, "ingester %d", k)
		all = append(all, hs...)
	}
	require.ElementsMatch(t, []uint64{1, 3, 4, 5, 6}, all, "every agreed series once")
	require.Contains(t, d.evaluate[1], uint64(4), "only b holds 4")
	require.Contains(t, d.evaluate[0], uint64(5), "only a holds 5")
	require.Contains(t, d.evaluate[2], uint64(6), "only c holds 6")
	require.Equal(t, 7, d.series)
	require.Equal(t, int64(5+5+9+5+2), d.samples, "of the series evaluated, per series the most any replica holds")
}

func TestDesignateRefusesMalformedDigests(t *testing.T) {
	bad := digestsOf("a", [3]uint64{2, 1, 1}, [3]uint64{1, 1, 1})
	_, err := designate([]digested{bad})
	require.ErrorContains(t, err, "not sorted")
	bad = digestsOf("a", [3]uint64{1, 1, 1})
	bad.resp.Samples = nil
	_, err = designate([]digested{bad})
	require.ErrorContains(t, err, "unequal lengths")
}

func TestDesignateNothing(t *testing.T) {
	d, err := designate([]digested{digestsOf("a"), digestsOf("b")})
	require.NoError(t, err)
	require.Zero(t, d.series)
	require.Empty(t, d.merge)
	require.Empty(t, d.evaluate[0])
}
