package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ringpb"
)

var testNow = time.UnixMilli(1_700_000_000_000)

// inst builds a token-owning instance whose last heartbeat was ago before
// testNow.
func inst(id, zone string, state ringpb.State, ago time.Duration, tokens ...uint32) *ringpb.Instance {
	return &ringpb.Instance{
		Id: id, Addr: id + ":9095", Zone: zone, State: state, Tokens: tokens,
		HeartbeatMs: testNow.Add(-ago).UnixMilli(), Version: 1, OwnsTokens: true,
	}
}

func staticRing(rf int, zones bool, instances ...*ringpb.Instance) *Ring {
	d := &ringpb.Desc{Instances: map[string]*ringpb.Instance{}}
	for _, in := range instances {
		d.Instances[in.Id] = in
	}
	r := NewStaticRing(Config{ReplicationFactor: rf, ZoneAwareness: zones, HeartbeatTimeout: time.Minute}, d)
	r.now = func() time.Time { return testNow }
	return r
}

func ids(set ReplicationSet) []string {
	var out []string
	for _, in := range set.Instances {
		out = append(out, in.Id)
	}
	return out
}

const (
	active  = ringpb.State_ACTIVE
	leaving = ringpb.State_LEAVING
	joining = ringpb.State_JOINING
	pending = ringpb.State_PENDING
	left    = ringpb.State_LEFT
)

func TestGet(t *testing.T) {
	dead := 2 * time.Minute
	// Four instances with tokens interleaved a, b, c, d around the ring.
	abcd := func(states map[string]ringpb.State, ages map[string]time.Duration) []*ringpb.Instance {
		var out []*ringpb.Instance
		for i, id := range []string{"a", "b", "c", "d"} {
			st, ok := states[id]
			if !ok {
				st = active
			}
			base := uint32(i+1) * 100
			out = append(out, inst(id, "", st, ages[id], base, base+1000, base+2000))
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		rf        int
		zones     bool
		instances []*ringpb.Instance
		key       uint32
		want      []string
		maxErrors int
		err       error
	}{
		{name: "rf1 single instance", rf: 1, instances: []*ringpb.Instance{inst("a", "", active, 0, 10)}, key: 99999, want: []string{"a"}},
		{name: "empty ring", rf: 1, err: ErrEmptyRing},
		{name: "only instances without tokens", rf: 1, instances: []*ringpb.Instance{{Id: "dist", State: active, HeartbeatMs: testNow.UnixMilli()}}, err: ErrEmptyRing},
		{name: "rf1 first token at or after key", rf: 1, instances: abcd(nil, nil), key: 150, want: []string{"b"}},
		{name: "rf1 key equal to a token", rf: 1, instances: abcd(nil, nil), key: 200, want: []string{"b"}},
		{name: "rf1 wraps past the last token", rf: 1, instances: abcd(nil, nil), key: 2401, want: []string{"a"}},
		{name: "rf3 clockwise distinct", rf: 3, instances: abcd(nil, nil), key: 150, want: []string{"b", "c", "d"}, maxErrors: 1},
		{name: "rf3 one unhealthy keeps its place", rf: 3, instances: abcd(nil, map[string]time.Duration{"c": dead}), key: 150, want: []string{"b", "d"}},
		{name: "rf3 two unhealthy below quorum", rf: 3, instances: abcd(nil, map[string]time.Duration{"c": dead, "d": dead}), key: 150, err: ErrTooFewHealthy},
		{name: "rf3 leaving passes writes to the next", rf: 3, instances: abcd(map[string]ringpb.State{"b": leaving}, nil), key: 150, want: []string{"c", "d", "a"}, maxErrors: 1},
		{name: "rf3 joining and pending take no writes", rf: 3, instances: abcd(map[string]ringpb.State{"b": joining, "c": pending}, nil), key: 150, want: []string{"d", "a"}},
		{name: "rf1 only instance leaving", rf: 1, instances: []*ringpb.Instance{inst("a", "", leaving, 0, 10)}, err: ErrTooFewHealthy},
		{name: "rf1 only instance unhealthy", rf: 1, instances: []*ringpb.Instance{inst("a", "", active, dead, 10)}, err: ErrTooFewHealthy},
		{name: "rf3 on a ring of one", rf: 3, instances: []*ringpb.Instance{inst("a", "", active, 0, 10)}, err: ErrTooFewHealthy},
		{name: "left instance is not in the ring", rf: 1, instances: []*ringpb.Instance{inst("a", "", left, 0, 10), inst("b", "", active, 0, 20)}, key: 5, want: []string{"b"}},
		{name: "instance not owning tokens is never picked", rf: 1, key: 5, want: []string{"b"},
			instances: []*ringpb.Instance{{Id: "a", State: active, Tokens: []uint32{10}, HeartbeatMs: testNow.UnixMilli()}, inst("b", "", active, 0, 20)}},
		{name: "conflicting token goes to the lower id", rf: 1, instances: []*ringpb.Instance{inst("b", "", active, 0, 10), inst("a", "", active, 0, 10, 50)}, key: 5, want: []string{"a"}},
		{name: "zones: one replica per zone", rf: 3, zones: true,
			instances: []*ringpb.Instance{
				inst("a1", "a", active, 0, 10), inst("a2", "a", active, 0, 20),
				inst("b1", "b", active, 0, 30), inst("b2", "b", active, 0, 40),
				inst("c1", "c", active, 0, 50), inst("c2", "c", active, 0, 60),
			}, key: 5, want: []string{"a1", "b1", "c1"}, maxErrors: 1},
		{name: "zones: leaving instance replaced from its own zone", rf: 3, zones: true,
			instances: []*ringpb.Instance{
				inst("a1", "a", leaving, 0, 10), inst("a2", "a", active, 0, 20),
				inst("b1", "b", active, 0, 30), inst("c1", "c", active, 0, 50),
			}, key: 5, want: []string{"a2", "b1", "c1"}, maxErrors: 1},
		{name: "zones: unhealthy instance keeps its zone's slot", rf: 3, zones: true,
			instances: []*ringpb.Instance{
				inst("a1", "a", active, dead, 10), inst("a2", "a", active, 0, 20),
				inst("b1", "b", active, 0, 30), inst("c1", "c", active, 0, 50),
			}, key: 5, want: []string{"b1", "c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := staticRing(tc.rf, tc.zones, tc.instances...).Get(tc.key)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(set))
			require.Equal(t, tc.maxErrors, set.MaxErrors)
		})
	}
}

func TestForQuery(t *testing.T) {
	dead := 2 * time.Minute
	for _, tc := range []struct {
		name      string
		rf        int
		zones     bool
		instances []*ringpb.Instance
		want      []string
		maxErrors int
		err       error
		// incomplete and changing are the read warnings expected.
		incomplete, changing bool
	}{
		{name: "empty", rf: 1, err: ErrEmptyRing},
		{name: "rf1 all healthy", rf: 1, instances: []*ringpb.Instance{inst("b", "", active, 0, 1), inst("a", "", active, 0, 2)}, want: []string{"a", "b"}},
		{name: "rf1 one unhealthy", rf: 1, instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, dead, 2)}, err: ErrTooFewHealthy},
		{name: "states that may hold data", rf: 1, changing: true,
			instances: []*ringpb.Instance{
				inst("a", "", active, 0, 1), inst("b", "", leaving, 0, 2), inst("c", "", joining, 0, 3),
				inst("d", "", pending, 0, 4), inst("e", "", left, 0), {Id: "dist", State: active, HeartbeatMs: testNow.UnixMilli()},
			}, want: []string{"a", "b", "c"}},
		{name: "rf1 one forgotten: answer, but incomplete", rf: 1, incomplete: true,
			instances: []*ringpb.Instance{inst("a", "", active, 0, 1), forgottenInst("b", "")}, want: []string{"a"}},
		{name: "rf3 one forgotten spends the budget", rf: 3,
			instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, 0, 2), inst("c", "", active, 0, 3), forgottenInst("d", "")},
			want:      []string{"a", "b", "c"}},
		{name: "rf3 one forgotten, one unhealthy", rf: 3, incomplete: true,
			instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, dead, 2), inst("c", "", active, 0, 3), forgottenInst("d", "")},
			want:      []string{"a", "c"}},
		{name: "zones: a forgotten member's zone stays", rf: 3, zones: true,
			instances: []*ringpb.Instance{inst("a1", "a", active, 0, 1), forgottenInst("a2", "a"), inst("b1", "b", active, 0, 4), inst("c1", "c", active, 0, 5)},
			want:      []string{"a1", "b1", "c1"}},
		{name: "zones: forgotten in two zones", rf: 3, zones: true, incomplete: true,
			instances: []*ringpb.Instance{inst("a1", "a", active, 0, 1), forgottenInst("a2", "a"), forgottenInst("b2", "b"), inst("b1", "b", active, 0, 4), inst("c1", "c", active, 0, 5)},
			want:      []string{"a1", "b1", "c1"}},
		{name: "rf3 all healthy", rf: 3, instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, 0, 2), inst("c", "", active, 0, 3)}, want: []string{"a", "b", "c"}, maxErrors: 1},
		{name: "rf3 one unhealthy", rf: 3, instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, dead, 2), inst("c", "", active, 0, 3)}, want: []string{"a", "c"}},
		{name: "rf3 two unhealthy", rf: 3, instances: []*ringpb.Instance{inst("a", "", active, 0, 1), inst("b", "", active, dead, 2), inst("c", "", active, dead, 3)}, err: ErrTooFewHealthy},
		{name: "zones: two unhealthy in one zone", rf: 3, zones: true,
			instances: []*ringpb.Instance{
				inst("a1", "a", active, dead, 1), inst("a2", "a", active, dead, 2), inst("a3", "a", active, 0, 3),
				inst("b1", "b", active, 0, 4), inst("c1", "c", active, 0, 5),
			}, want: []string{"b1", "c1"}},
		{name: "zones: unhealthy in two zones", rf: 3, zones: true, err: ErrTooFewHealthy,
			instances: []*ringpb.Instance{inst("a1", "a", active, dead, 1), inst("b1", "b", active, dead, 4), inst("c1", "c", active, 0, 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := staticRing(tc.rf, tc.zones, tc.instances...).ForQuery()
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(set))
			require.Equal(t, tc.maxErrors, set.MaxErrors)
			require.Equal(t, tc.incomplete, set.Incomplete != "", set.Incomplete)
			require.Equal(t, tc.changing, set.Changing)
		})
	}
}

// forgottenInst is the tombstone of a token owner auto-forgotten in zone.
func forgottenInst(id, zone string) *ringpb.Instance {
	return &ringpb.Instance{Id: id, Zone: zone, State: left, HeartbeatMs: testNow.UnixMilli(), OwnsTokens: true, Forgotten: true}
}

func TestOwnedFractionAndInstances(t *testing.T) {
	r := staticRing(1, false, inst("b", "", active, 0, 1<<31), inst("a", "", active, 0, 1<<30), inst("c", "", left, 0))
	got := r.OwnedFraction()
	require.InDelta(t, 0.75, got["a"], 1e-9, "a owns (2^31, 2^30] across the wrap")
	require.InDelta(t, 0.25, got["b"], 1e-9)
	require.NotContains(t, got, "c")
	var all []string
	for _, in := range r.Instances() {
		all = append(all, in.Id)
	}
	require.Equal(t, []string{"a", "b", "c"}, all, "all known instances, tombstones included, sorted by id")

	single := staticRing(1, false, inst("a", "", active, 0, 7))
	require.InDelta(t, 1.0, single.OwnedFraction()["a"], 1e-9)
}

func TestIsHealthy(t *testing.T) {
	r := staticRing(1, false)
	require.True(t, r.IsHealthy(inst("a", "", active, time.Minute), testNow))
	require.False(t, r.IsHealthy(inst("a", "", active, time.Minute+time.Millisecond), testNow))
	require.True(t, r.IsHealthy(inst("a", "", active, -time.Hour), testNow), "a clock ahead of ours is not a dead instance")
	require.False(t, r.IsHealthy(inst("a", "", left, 0), testNow))
}

func TestSnapshotSharesTokenTableOnHeartbeat(t *testing.T) {
	a, b := inst("a", "", active, 0, 1, 2), inst("b", "", active, 0, 3)
	prev := buildSnapshot(map[string]*ringpb.Instance{"a": a, "b": b}, nil)
	beat := cloneInstance(a)
	beat.Version++
	beat.HeartbeatMs++
	next := buildSnapshot(map[string]*ringpb.Instance{"a": beat, "b": b}, prev)
	require.Same(t, &prev.tokens[0], &next.tokens[0], "heartbeat reuses the token table")
	require.Same(t, beat, next.instances[0])

	moved := cloneInstance(a)
	moved.Tokens = []uint32{1, 5}
	next = buildSnapshot(map[string]*ringpb.Instance{"a": moved, "b": b}, prev)
	require.Equal(t, []uint32{1, 3, 5}, next.tokens)
}

func TestTokenConflictLookup(t *testing.T) {
	s := buildSnapshot(map[string]*ringpb.Instance{
		"a": inst("a", "", active, 0, 10, 20),
		"b": inst("b", "", active, 0, 20, 30),
		"c": inst("c", "", active, 0, 20),
		"d": inst("d", "", left, 0),
	}, nil)
	require.Equal(t, []uint32{10, 20, 30}, s.tokens)
	require.Equal(t, map[string][]uint32{"b": {20}, "c": {20}}, s.lost)
	require.Equal(t, 2, s.tokensOwned("a"))
	require.Equal(t, 1, s.tokensOwned("b"))
	require.Equal(t, 0, s.tokensOwned("c"))
}

func TestShardKey(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "node")
	require.Equal(t, ShardKey("t1", ls), ShardKey("t1", labels.FromStrings("job", "node", "__name__", "up")))
	require.NotEqual(t, ShardKey("t1", ls), ShardKey("t2", ls))
	require.NotEqual(t, ShardKey("t", labels.FromStrings("a", "bc")), ShardKey("t", labels.FromStrings("ab", "c")),
		"field boundaries are part of the hash")
	require.NotEqual(t, ShardKey("ta", labels.FromStrings("b", "c")), ShardKey("t", labels.FromStrings("ab", "c")))
	// Pinned: a change here moves every stored series to another owner.
	require.Equal(t, uint32(0xba8653af), ShardKey("tenant", ls))

	// The byte-slice form used on the write path computes the same key.
	var h ShardHasher
	h.Reset("tenant")
	ls.Range(func(l labels.Label) { h.Add([]byte(l.Name), []byte(l.Value)) })
	require.Equal(t, ShardKey("tenant", ls), h.Sum())
}

// TestSpread places 100k random series on 4 instances × 128 random tokens
// and reports the most loaded instance against a fair share.
func TestSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	var instances []*ringpb.Instance
	taken := map[uint32]struct{}{}
	others := map[string][]uint32{}
	for i := range 4 {
		tokens := chooseTokens(128, others, taken, r.Uint32)
		others[fmt.Sprint(i)] = tokens
		for _, tk := range tokens {
			taken[tk] = struct{}{}
		}
		instances = append(instances, inst(fmt.Sprintf("ingester-%d", i), "", active, 0, tokens...))
	}
	ring := staticRing(1, false, instances...)
	const series = 100_000
	counts := map[string]int{}
	for i := range series {
		ls := labels.FromStrings("__name__", "metric_"+strconv.Itoa(i%97), "instance", strconv.Itoa(r.IntN(1<<30)), "i", strconv.Itoa(i))
		set, err := ring.Get(ShardKey("tenant-"+strconv.Itoa(i%7), ls))
		require.NoError(t, err)
		counts[set.Instances[0].Id]++
	}
	fair := float64(series) / 4
	var loads []float64
	for _, c := range counts {
		loads = append(loads, float64(c)/fair)
	}
	maxOwned := 0.0
	for _, f := range ring.OwnedFraction() {
		maxOwned = max(maxOwned, f*4)
	}
	t.Logf("spread: 4 instances x 128 chosen tokens, %d series: max/fair = %.3f (token space max/fair = %.3f), loads %.3f",
		series, slices.Max(loads), maxOwned, loads)
	require.Len(t, counts, 4)
	require.Less(t, slices.Max(loads), 1.25)
	require.InDelta(t, maxOwned, slices.Max(loads), 0.05, "series follow the token space")
}

func BenchmarkGet(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	var instances []*ringpb.Instance
	for i := range 30 {
		instances = append(instances, inst(fmt.Sprintf("i%02d", i), []string{"a", "b", "c"}[i%3], active, 0,
			generateTokens(128, nil, r.Uint32)...))
	}
	ring := staticRing(3, true, instances...)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ring.Get(uint32(i) * 2654435761); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShardKey(b *testing.B) {
	ls := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "10.0.0.1:9090", "code", "200")
	b.ReportAllocs()
	for b.Loop() {
		ShardKey("tenant", ls)
	}
}

func TestShardHasherMatchesShardKey(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "node", "instance", "a:9100")
	var h ShardHasher
	h.Reset("tenant")
	ls.Range(func(l labels.Label) { h.Add([]byte(l.Name), []byte(l.Value)) })
	require.Equal(t, ShardKey("tenant", ls), h.Sum())
}
