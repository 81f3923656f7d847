package ring

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// setState is a grow-only set of strings: the simplest lattice.
type setState struct {
	mu  sync.Mutex
	set map[string]bool
}

func (s *setState) Merge(buf []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, e := range strings.Fields(string(buf)) {
		if !s.set[e] {
			s.set[e], changed = true, true
		}
	}
	return changed, nil
}

func (s *setState) State() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []string
	for e := range s.set {
		all = append(all, e)
	}
	slices.Sort(all)
	return []byte(strings.Join(all, " "))
}

func (s *setState) has(e string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[e]
}

func TestSharedStateSpreadsByBroadcastAndPushPull(t *testing.T) {
	t.Parallel()
	states := map[string]*setState{}
	start := func(id, join string) *Member {
		m := newTestMember(t, id, join, func(_ *Config, s *Self) { s.OwnsTokens = false })
		states[id] = &setState{set: map[string]bool{}}
		require.NoError(t, m.Share("set", states[id]))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Start(ctx))
		t.Cleanup(func() { stopMember(t, m) })
		return m
	}
	a := start("a", "")
	b := start("b", a.GossipAddr())
	requireConverged(t, []string{"a", "b"}, a, b)

	// A broadcast from a reaches b.
	_, _ = states["a"].Merge([]byte("x"))
	a.Publish("set", "x", []byte("x"))
	require.Eventually(t, func() bool { return states["b"].has("x") }, 5*time.Second, 10*time.Millisecond)

	// A member joining later learns it all on join, by push/pull.
	c := start("c", b.GossipAddr())
	requireConverged(t, []string{"a", "b", "c"}, a, b, c)
	require.Eventually(t, func() bool { return states["c"].has("x") }, 5*time.Second, 10*time.Millisecond)

	require.Error(t, c.Share("late", &setState{}), "Share after Start")
}

func TestCountHealthyByComponent(t *testing.T) {
	t.Parallel()
	ing := startMember(t, "ing", "", func(_ *Config, s *Self) { s.Components = []string{"ingester"} })
	d1 := startMember(t, "d1", ing.GossipAddr(), func(_ *Config, s *Self) {
		s.OwnsTokens, s.Components = false, []string{"querier", "distributor"}
	})
	d2 := startMember(t, "d2", ing.GossipAddr(), func(_ *Config, s *Self) { s.OwnsTokens, s.Components = false, []string{"distributor"} })
	requireConverged(t, []string{"ing", "d1", "d2"}, ing, d1, d2)
	require.Equal(t, 2, ing.Ring().CountHealthy("distributor"))
	require.Equal(t, 1, d2.Ring().CountHealthy("ingester"))
	require.Equal(t, []string{"distributor", "querier"}, ownEntry(d1).Components)
}
