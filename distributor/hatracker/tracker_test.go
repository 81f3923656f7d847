package hatracker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/hapb"
)

func newTestTracker(t *testing.T, now *time.Time, published *[][]byte) *Tracker {
	t.Helper()
	tr, err := New(Config{UpdateTimeout: time.Second, FailoverTimeout: 5 * time.Second},
		func(_ string, b []byte) { *published = append(*published, b) }, prometheus.NewRegistry())
	require.NoError(t, err)
	tr.now = func() time.Time { return *now }
	return tr
}

func TestElectionAndFailover(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	var published [][]byte
	tr := newTestTracker(t, &now, &published)
	step := func(d time.Duration) { now = now.Add(d) }

	steps := []struct {
		advance     time.Duration
		replica     string
		accepted    bool
		elected     string
		publishedTo int
	}{
		{0, "a", true, "a", 1},                       // first push elects a
		{0, "b", false, "a", 1},                      // standby dropped
		{500 * time.Millisecond, "a", true, "a", 1},  // within update timeout: nothing gossiped
		{time.Second, "a", true, "a", 2},             // received time refreshed and gossiped
		{4 * time.Second, "b", false, "a", 2},        // a silent 4s < 5s: still a
		{1100 * time.Millisecond, "b", true, "b", 3}, // a silent 5.1s: failover to b
		{0, "a", false, "b", 3},                      // a comes back as the standby
	}
	for i, s := range steps {
		step(s.advance)
		err := tr.Check("t1", "c1", s.replica, 0)
		if s.accepted {
			require.NoError(t, err, "step %d", i)
		} else {
			require.Equal(t, apierr.Deduplicated, apierr.KindOf(err), "step %d: %v", i, err)
			require.ErrorContains(t, err, "replica="+s.replica+", elected="+s.elected)
		}
		require.Equal(t, s.elected, tr.Elected("t1", "c1"), "step %d", i)
		require.Len(t, published, s.publishedTo, "step %d", i)
	}
	// Another tenant's cluster of the same name is its own election.
	require.NoError(t, tr.Check("t2", "c1", "a", 0))
	require.Equal(t, "a", tr.Elected("t2", "c1"))
}

func TestMaxClusters(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	var published [][]byte
	tr := newTestTracker(t, &now, &published)
	require.NoError(t, tr.Check("t", "c1", "a", 2))
	require.NoError(t, tr.Check("t", "c2", "a", 2))
	err := tr.Check("t", "c3", "a", 2)
	require.Equal(t, apierr.BadData, apierr.KindOf(err))
	require.ErrorContains(t, err, "err-orrery-too-many-ha-clusters")
	require.NoError(t, tr.Check("t", "c1", "a", 2), "an existing cluster is not refused")

	// Clusters silent for forgetAfter are forgotten and free their place;
	// a peer's stale copy does not bring them back.
	stale := tr.State()
	now = now.Add(forgetAfter + time.Second)
	require.NoError(t, tr.Check("t", "c3", "a", 2))
	var st hapb.Elections
	require.NoError(t, proto.Unmarshal(tr.State(), &st))
	require.Len(t, st.Elections, 1, "only c3 is left")
	changed, err := tr.Merge(stale)
	require.NoError(t, err)
	require.False(t, changed)
	require.Empty(t, tr.Elected("t", "c1"))
}

// TestMergeConverges: distributors that elected different replicas at once
// agree on the same one whatever order they hear each other in.
func TestMergeConverges(t *testing.T) {
	enc := func(es ...*hapb.Election) []byte {
		b, err := proto.Marshal(&hapb.Elections{Elections: es})
		require.NoError(t, err)
		return b
	}
	e1 := &hapb.Election{Tenant: "t", Cluster: "c", Replica: "a", ElectedMs: 100, ReceivedMs: 100}
	e2 := &hapb.Election{Tenant: "t", Cluster: "c", Replica: "b", ElectedMs: 100, ReceivedMs: 100}
	e3 := &hapb.Election{Tenant: "t", Cluster: "c", Replica: "a", ElectedMs: 50, ReceivedMs: 400}
	e4 := &hapb.Election{Tenant: "t", Cluster: "c", Replica: "b", ElectedMs: 100, ReceivedMs: 300}
	orders := [][]*hapb.Election{{e1, e2, e3, e4}, {e4, e3, e2, e1}, {e3, e1, e4, e2}, {e2, e4, e1, e3, e2}}
	for _, order := range orders {
		now := time.UnixMilli(1000)
		var published [][]byte
		tr := newTestTracker(t, &now, &published)
		for _, e := range order {
			_, err := tr.Merge(enc(e))
			require.NoError(t, err)
		}
		require.Equal(t, "b", tr.Elected("t", "c"))
		var st hapb.Elections
		require.NoError(t, proto.Unmarshal(tr.State(), &st))
		require.Len(t, st.Elections, 1)
		require.True(t, proto.Equal(e4, st.Elections[0]))
	}

	now := time.UnixMilli(1000)
	var published [][]byte
	tr := newTestTracker(t, &now, &published)
	changed, err := tr.Merge(enc(e4))
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = tr.Merge(enc(e4))
	require.NoError(t, err)
	require.False(t, changed, "merging the same state again changes nothing")
	_, err = tr.Merge([]byte{0xff, 0xff})
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, (&Config{UpdateTimeout: time.Second, FailoverTimeout: time.Second}).Validate())
	require.Error(t, (&Config{FailoverTimeout: time.Second}).Validate())
	require.NoError(t, (&Config{UpdateTimeout: time.Second, FailoverTimeout: 2 * time.Second}).Validate())
}
