//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChurnUnderReadBackChecker is RELIABILITY.md scenarios 9 and 14: an
// RF=3 cluster with two distributors and two queriers, while orrery-check
// writes known series through both distributors and reads them back
// through both queriers. Every process is restarted in turn (ingesters by
// SIGTERM, which hands over, and start again on their data dir), then the
// ingesters go 3 → 6 (two joining at once, then a third) and back to 3 by
// graceful leaves. Afterwards no token is claimed twice and every member
// sees the same ring; during it every write was eventually acknowledged
// (retried across distributors like a load balancer would), and every
// answer the checker got matched what was acknowledged.
func TestChurnUnderReadBackChecker(t *testing.T) {
	c := newCluster(t, 3)
	for _, id := range []string{"ing1", "ing2", "ing3", "dist1", "dist2", "quer1", "quer2"} {
		c.add(id)
	}
	viewers := []string{"dist1", "dist2", "quer1", "quer2"}
	waitAll := func(owners ...string) {
		t.Helper()
		for _, id := range viewers {
			c.waitRing(id, owners...)
		}
	}
	waitAll("ing1", "ing2", "ing3")

	urls := func(path string, ids ...string) string {
		var out []string
		for _, id := range ids {
			out = append(out, c.members[id].url(path))
		}
		return strings.Join(out, ",")
	}
	chk := startChecker(t, urls("/api/v1/push", "dist1", "dist2"), urls("/prometheus", "quer1", "quer2"),
		"-interval=500ms", "-series=60", "-write.retry-for=90s")
	chk.waitSteps(t, 1)
	began := time.Now()

	// Rolling restart of every process, one at a time. While each is down
	// the checker makes two passes, so at least one whole read of
	// everything happens without it: at RF=3 one ingester down must not
	// make an answer lose anything.
	for _, id := range []string{"ing1", "ing2", "ing3", "dist1", "dist2", "quer1", "quer2"} {
		c.reseed(id)
		c.members[id].stop(t)
		chk.waitSteps(t, 2)
		c.startMember(id)
		waitAll("ing1", "ing2", "ing3")
		t.Logf("%v: %s restarted", time.Since(began).Round(time.Second), id)
	}

	// 3 → 6: two ingesters join at the same moment, then one more.
	c.addAtOnce("ing4", "ing5")
	waitAll("ing1", "ing2", "ing3", "ing4", "ing5")
	c.add("ing6")
	all := []string{"ing1", "ing2", "ing3", "ing4", "ing5", "ing6"}
	waitAll(all...)
	t.Logf("%v: 6 ingesters", time.Since(began).Round(time.Second))
	c.requireOneRing(all, viewers)
	chk.waitSteps(t, 1)

	// 6 → 3 by graceful leaves, one at a time.
	for _, id := range []string{"ing6", "ing5", "ing4"} {
		c.members[id].stop(t)
		all = slices.DeleteFunc(all, func(s string) bool { return s == id })
		waitAll(all...)
		t.Logf("%v: %s left", time.Since(began).Round(time.Second), id)
		chk.waitSteps(t, 1)
	}
	c.requireOneRing(all, viewers)

	r, ok := chk.finish(t)
	require.True(t, ok, "orrery-check exit status; problems: %v", r.Problems)
	require.Zero(t, r.SamplesMissing, "acknowledged samples missing")
	require.Zero(t, r.MismatchedAnswers, "answers that differ from what was acknowledged: %v", r.Problems)
	require.Zero(t, r.SamplesUncertain+r.SamplesRejected, "every write was acknowledged in the end")
	// Generous for a loaded CI machine; on a quiet one it is well under 1 s.
	require.Less(t, r.LongestWriteUnavailabilityS, 10.0, "writes kept succeeding")
	require.Positive(t, r.Answers)
}

// reseed makes a member other than id the one others join through, so
// that id, restarted, joins the cluster instead of itself.
func (c *cluster) reseed(id string) {
	if c.seed != c.members[id] {
		return
	}
	for other, o := range c.members {
		if other != id && o.cmd.ProcessState == nil {
			c.seed = o
			return
		}
	}
}

// addAtOnce starts several new members without waiting for one to be
// ready before starting the next, so that they join the ring together.
func (c *cluster) addAtOnce(ids ...string) {
	c.t.Helper()
	ports := distinctFreePorts(c.t, 3*len(ids))
	for n, id := range ids {
		o := &orrery{http: ports[3*n], grpc: ports[3*n+1], gossip: ports[3*n+2], dataDir: c.t.TempDir()}
		c.members[id] = o
		o.process = startProcess(c.t, id, orreryBin,
			"-target="+targetOf(id), "-instance.id="+id, "-data.dir="+o.dataDir,
			fmt.Sprintf("-http.listen-address=127.0.0.1:%d", o.http),
			fmt.Sprintf("-grpc.listen-address=127.0.0.1:%d", o.grpc),
			fmt.Sprintf("-memberlist.bind-address=127.0.0.1:%d", o.gossip),
			fmt.Sprintf("-replication-factor=%d", c.rf),
			fmt.Sprintf("-memberlist.join=127.0.0.1:%d", c.seed.gossip),
			fastRing[0], fastRing[1])
	}
	for _, id := range ids {
		waitReady(c.t, c.members[id].url("/ready"))
	}
}

// distinctFreePorts returns n loopback ports nobody listens on, all
// different: freePort alone may hand out the same port twice when nothing
// listens on it in between.
func distinctFreePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// requireOneRing checks that no token is claimed twice and that every
// member sees the same ring: the ingesters' persisted tokens are disjoint,
// each owns all of them after conflict resolution, and every viewer's
// /ring lists the same owners with the same token counts and shares.
func (c *cluster) requireOneRing(ingesters, viewers []string) {
	c.t.Helper()
	owner := map[uint32]string{}
	for _, id := range ingesters {
		b, err := os.ReadFile(filepath.Join(c.members[id].dataDir, "tokens"))
		require.NoError(c.t, err)
		var f struct {
			Tokens []uint32 `json:"tokens"`
		}
		require.NoError(c.t, json.Unmarshal(b, &f))
		require.NotEmpty(c.t, f.Tokens)
		for _, tok := range f.Tokens {
			require.Empty(c.t, owner[tok], "token %d claimed by %s and %s", tok, owner[tok], id)
			owner[tok] = id
		}
		require.Equal(c.t, float64(len(f.Tokens)), metricValue(c.t, c.members[id], "orrery_ring_tokens_owned"), "%s owns every token it claims", id)
	}
	type row struct {
		State  string
		Tokens int
		Owned  string
	}
	view := func(id string) map[string]row {
		_, body := rawGet(c.t, c.members[id].url("/ring?format=json"))
		var st struct {
			Members []struct {
				ID     string  `json:"id"`
				State  string  `json:"state"`
				Tokens int     `json:"tokens"`
				Owned  float64 `json:"owned_percent"`
			} `json:"members"`
		}
		require.NoError(c.t, json.Unmarshal([]byte(body), &st), body)
		out := map[string]row{}
		for _, m := range st.Members {
			if m.Tokens > 0 {
				out[m.ID] = row{m.State, m.Tokens, fmt.Sprintf("%.6f", m.Owned)}
			}
		}
		return out
	}
	// A member that just left may still own tokens in a view until its
	// LEFT entry arrives there: the ring converges, it is not instant.
	var want map[string]row
	require.Eventually(c.t, func() bool { want = view(viewers[0]); return len(want) == len(ingesters) }, 10*time.Second, 200*time.Millisecond,
		"token owners seen by %s: want %v", viewers[0], ingesters)
	for _, id := range append(slices.Clone(viewers[1:]), ingesters...) {
		require.Eventually(c.t, func() bool { return fmt.Sprint(view(id)) == fmt.Sprint(want) }, 10*time.Second, 200*time.Millisecond,
			"%s sees the ring as %s does: %v", id, viewers[0], want)
	}
}
