package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ringpb"
)

// randomInstance draws from small domains so that equal versions, equal
// heartbeats and equal states are common and every tie-break is exercised.
func randomInstance(r *rand.Rand, id string) *ringpb.Instance {
	in := &ringpb.Instance{
		Id:          id,
		Addr:        fmt.Sprintf("10.0.0.%d:9095", r.IntN(2)),
		Zone:        []string{"", "a", "b"}[r.IntN(3)],
		State:       ringpb.State(r.IntN(5)),
		HeartbeatMs: int64(r.IntN(3)),
		Version:     uint64(r.IntN(4)),
		OwnsTokens:  r.IntN(2) == 0,
	}
	in.Forgotten = in.State == ringpb.State_LEFT && r.IntN(2) == 0
	for range r.IntN(3) {
		in.Tokens = append(in.Tokens, uint32(r.IntN(4)))
	}
	in.Tokens = sortedUnique(in.Tokens)
	return in
}

func randomDesc(r *rand.Rand) *ringpb.Desc {
	d := &ringpb.Desc{Instances: map[string]*ringpb.Instance{}}
	for _, id := range []string{"a", "b", "c", "d"} {
		if r.IntN(3) > 0 {
			d.Instances[id] = randomInstance(r, id)
		}
	}
	return d
}

func TestMergeLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		a, b, c := randomDesc(r), randomDesc(r), randomDesc(r)
		msg := fmt.Sprintf("iteration %d\na=%v\nb=%v\nc=%v", i, a, b, c)
		require.True(t, proto.Equal(a, mergeDescs(a, a)), "idempotent: "+msg)
		ab, ba := mergeDescs(a, b), mergeDescs(b, a)
		require.True(t, proto.Equal(ab, ba), "commutative: "+msg)
		require.True(t, proto.Equal(mergeDescs(ab, c), mergeDescs(a, mergeDescs(b, c))), "associative: "+msg)
		// The merge only selects: every entry of the result is one of the
		// inputs' entries, never a blend.
		for id, got := range ab.Instances {
			require.True(t, proto.Equal(got, a.Instances[id]) || proto.Equal(got, b.Instances[id]), "selection: "+msg)
		}
	}
}

func TestCompareInstances(t *testing.T) {
	base := &ringpb.Instance{Id: "a", Version: 5, HeartbeatMs: 10, State: ringpb.State_ACTIVE, Tokens: []uint32{1, 2}}
	with := func(f func(*ringpb.Instance)) *ringpb.Instance {
		c := cloneInstance(base)
		f(c)
		return c
	}
	for name, tc := range map[string]struct {
		winner, loser *ringpb.Instance
	}{
		"higher version wins over later heartbeat": {
			with(func(i *ringpb.Instance) { i.Version = 6; i.HeartbeatMs = 1 }), base},
		"equal version: later heartbeat wins": {
			with(func(i *ringpb.Instance) { i.HeartbeatMs = 11 }), base},
		"equal version and heartbeat: later state wins": {
			with(func(i *ringpb.Instance) { i.State = ringpb.State_LEFT; i.Tokens = nil }), base},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, 1, compareInstances(tc.winner, tc.loser))
			require.Equal(t, -1, compareInstances(tc.loser, tc.winner))
		})
	}
	t.Run("equal content compares equal", func(t *testing.T) {
		require.Equal(t, 0, compareInstances(base, cloneInstance(base)))
	})
	t.Run("different content with equal keys is ordered both ways", func(t *testing.T) {
		other := with(func(i *ringpb.Instance) { i.Addr = "elsewhere" })
		c := compareInstances(base, other)
		require.NotZero(t, c)
		require.Equal(t, -c, compareInstances(other, base))
	})
}

func TestNormalizeInstance(t *testing.T) {
	in, err := normalizeInstance("a", &ringpb.Instance{Id: "a", State: ringpb.State_ACTIVE, Tokens: []uint32{5, 1, 5, 3}})
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 3, 5}, in.Tokens)

	in, err = normalizeInstance("a", &ringpb.Instance{Id: "a", State: ringpb.State_LEFT, Tokens: []uint32{1}})
	require.NoError(t, err)
	require.Empty(t, in.Tokens, "a tombstone carries no tokens")

	_, err = normalizeInstance("a", &ringpb.Instance{Id: "b"})
	require.ErrorContains(t, err, `stored under "a" has id "b"`)
	_, err = normalizeInstance("a", &ringpb.Instance{Id: "a", State: 42})
	require.ErrorContains(t, err, "unknown state")
	_, err = normalizeInstance("a", nil)
	require.Error(t, err)
}

func TestExpiry(t *testing.T) {
	e := expiry{forgetAfter: 10 * time.Minute, tombstoneTTL: 10 * time.Minute}
	t0 := time.UnixMilli(1_700_000_000_000)
	live := &ringpb.Instance{Id: "x", Addr: "x:1", State: ringpb.State_ACTIVE, Tokens: []uint32{1, 2},
		HeartbeatMs: t0.UnixMilli(), RegisteredMs: 5, Version: 7, OwnsTokens: true}

	require.Same(t, live, e.apply(live, t0.Add(10*time.Minute)), "not yet forgettable")

	// Two members deciding at different moments write the same bytes.
	a := e.apply(live, t0.Add(10*time.Minute+time.Second))
	b := e.apply(live, t0.Add(15*time.Minute))
	require.True(t, proto.Equal(a, b))
	require.Equal(t, ringpb.State_LEFT, a.State)
	require.Equal(t, uint64(8), a.Version, "the tombstone beats the entry it replaces")
	require.Empty(t, a.Tokens)
	require.Equal(t, t0.Add(10*time.Minute).UnixMilli(), a.HeartbeatMs)
	require.Equal(t, 1, compareInstances(a, live))

	require.True(t, a.Forgotten, "a token owner's tombstone marks reads incomplete")
	require.Same(t, a, e.apply(a, t0.Add(20*time.Minute+time.Second)), "a forgotten tombstone does not expire")
	require.True(t, proto.Equal(a, e.apply(live, t0.Add(21*time.Minute))),
		"a long-dead entry arriving from a peer comes back as the same tombstone, never as a member")

	forgot := forgetTombstone(a, t0.Add(30*time.Minute))
	require.Equal(t, 1, compareInstances(forgot, a), "an operator's forget beats the forgotten tombstone")
	require.False(t, forgot.Forgotten)
	require.Same(t, forgot, e.apply(forgot, t0.Add(40*time.Minute)), "kept for its TTL")
	require.Nil(t, e.apply(forgot, t0.Add(40*time.Minute+time.Second)), "then dropped")
	early := forgetTombstone(live, t0.Add(2*time.Minute))
	require.Equal(t, 1, compareInstances(early, e.apply(live, t0.Add(time.Hour))),
		"forgetting an unhealthy entry beats the auto-forget tombstone others derive from it later")

	left := &ringpb.Instance{Id: "y", State: ringpb.State_LEFT, HeartbeatMs: t0.UnixMilli(), Version: 3}
	require.Same(t, left, e.apply(left, t0.Add(10*time.Minute)))
	require.Nil(t, e.apply(left, t0.Add(10*time.Minute+time.Millisecond)))
}
