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

// FuzzDesignate: whatever the replicas' digests, each series is either
// merged here or evaluated by exactly one replica that holds it, with
// the same digest as every other holder, and each replica's list is
// sorted.
func FuzzDesignate(f *testing.F) {
	f.Add([]byte{3, 1, 1, 2, 2, 2, 1, 3, 3})
	f.Add([]byte{1, 5, 5, 5, 5, 0, 0, 7, 7, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		n := int(data[0]%4) + 1
		answers := make([]digested, n)
		for k := range answers {
			answers[k] = digestsOf(string(rune('a' + k)))
		}
		// Each triple: the replica, the hash and the digest, small so
		// that they collide; hashes are kept sorted per replica.
		for i := 1; i+2 < len(data); i += 3 {
			r := answers[int(data[i])%n].resp
			h, dg := uint64(data[i+1]%8), uint64(data[i+2]%3)
			if len(r.Hashes) > 0 && r.Hashes[len(r.Hashes)-1] > h {
				continue
			}
			r.Hashes, r.Digests, r.Samples = append(r.Hashes, h), append(r.Digests, dg), append(r.Samples, 1)
		}
		d, err := designate(answers)
		require.NoError(t, err)
		holders := map[uint64][]int{}
		agree := map[uint64]bool{}
		for k, a := range answers {
			for j, h := range a.resp.Hashes {
				if hs := holders[h]; len(hs) == 0 {
					agree[h] = true
				} else if hs[len(hs)-1] == k || answers[hs[0]].resp.Digests[indexOf(answers[hs[0]].resp.Hashes, h)] != a.resp.Digests[j] {
					agree[h] = false
				}
				holders[h] = append(holders[h], k)
			}
		}
		seen := map[uint64]int{}
		for k, hs := range d.evaluate {
			require.IsNonDecreasing(t, hs)
			for _, h := range hs {
				seen[h]++
				require.True(t, agree[h], "hash %d evaluated though its replicas differ", h)
				require.Contains(t, holders[h], k, "hash %d evaluated by a replica without it", h)
			}
		}
		for _, h := range d.merge {
			seen[h]++
			require.False(t, agree[h], "hash %d merged though its replicas agree", h)
		}
		require.Len(t, seen, len(holders))
		for h, c := range seen {
			require.Equal(t, 1, c, "hash %d handled %d times", h, c)
		}
		require.Equal(t, len(holders), d.series)
	})
}

func indexOf(hs []uint64, h uint64) int {
	for k, x := range hs {
		if x == h {
			return k
		}
	}
	return -1
}
