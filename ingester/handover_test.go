package ingester

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// handoverOwners names to for every series now, and from (the leaving
// ingester) with also as its owners before.
type handoverOwners struct{ from, to, also string }

func (o handoverOwners) Get(uint32) (ring.ReplicationSet, error) {
	set := ring.ReplicationSet{Instances: []*ringpb.Instance{{Id: "to", Addr: o.to}}}
	if o.also != "" {
		set.Instances = append(set.Instances, &ringpb.Instance{Id: "also", Addr: o.also})
	}
	return set, nil
}

func (o handoverOwners) GetAsIfActive(uint32, string) (ring.ReplicationSet, error) {
	set := ring.ReplicationSet{Instances: []*ringpb.Instance{{Id: "from", Addr: o.from}}}
	if o.also != "" {
		set.Instances = append(set.Instances, &ringpb.Instance{Id: "also", Addr: o.also})
	}
	return set, nil
}

// TestHandover: a leaving ingester streams its series to the new owner
// only (not to a replica that held them already), and refuses pushes from
// the moment it starts, so none lands after what it streamed.
func TestHandover(t *testing.T) {
	from := newTestIngester(t, t.TempDir(), testConfig())
	defer from.stop(t)
	to := newTestIngester(t, t.TempDir(), testConfig())
	defer to.stop(t)
	also := newTestIngester(t, t.TempDir(), testConfig())
	defer also.stop(t)

	require.NoError(t, from.push(t, "team", series("m", 1, 25)))
	owners := handoverOwners{from: from.addr, to: to.addr, also: also.addr}
	require.NoError(t, from.Handover(ctxFor("team"), from.addr, owners, from.pool))

	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	got := to.samples(t, "team", name)
	require.Len(t, got, 1)
	for _, ts := range got {
		require.Len(t, ts, 25, "the new owner has every sample")
	}
	require.Empty(t, also.samples(t, "team", name), "a replica that owned the series before is not sent it again")

	err := from.push(t, "team", series("m", 26, 1))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}
