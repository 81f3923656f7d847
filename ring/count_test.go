package ring

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/proto/ringpb"
)

func TestHealthyIngesters(t *testing.T) {
	dead := 2 * time.Minute
	noTokens := inst("distributor", "", active, 0)
	noTokens.OwnsTokens = false
	for _, tc := range []struct {
		name      string
		instances []*ringpb.Instance
		want      int
	}{
		{"empty ring", nil, 0},
		{"one active", []*ringpb.Instance{inst("a", "", active, 0, 10)}, 1},
		{"only ACTIVE and healthy count", []*ringpb.Instance{
			inst("a", "", active, 0, 10), inst("b", "", active, 0, 20), inst("c", "", active, dead, 30),
			inst("d", "", joining, 0, 40), inst("e", "", leaving, 0, 50), inst("f", "", left, 0, 60),
		}, 2},
		{"instances without tokens are not ingesters", []*ringpb.Instance{inst("a", "", active, 0, 10), noTokens}, 1},
		// b claims only a token a already holds: it owns no range.
		{"a lost token conflict owns nothing", []*ringpb.Instance{inst("a", "", active, 0, 10), inst("b", "", active, 0, 10)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := staticRing(3, false, tc.instances...)
			require.Equal(t, tc.want, r.HealthyIngesters())
			require.Equal(t, 3, r.ReplicationFactor())
		})
	}
}
