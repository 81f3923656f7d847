//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/internal/apicompare"
)

// groupsOn returns the rule groups ruler id evaluates for team-a, as its
// own /rules lists them when asked for its share only.
func groupsOn(t *testing.T, c *cluster, id string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.members[id].url("/prometheus/api/v1/rules"), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", "team-a")
	req.Header.Set("X-Orrery-Rules-Local", "1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var r rulesAPI
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	var out []string
	for _, g := range r.Data.Groups {
		out = append(out, g.Name)
	}
	return out
}

// TestRulersShareGroupsAndTakeOver: three rulers over one ingester share
// twelve rule groups so that each group is evaluated by exactly one of
// them; when one is killed, its groups move to the others within the
// ring's heartbeat timeout plus a poll, and when it comes back it takes
// back its own; the recorded series never has a gap longer than that.
func TestRulersShareGroupsAndTakeOver(t *testing.T) {
	t.Parallel()
	rulesDir := filepath.Join(t.TempDir(), "rules")
	require.NoError(t, os.MkdirAll(filepath.Join(rulesDir, "team-a"), 0o755))
	var b strings.Builder
	b.WriteString("groups:\n")
	var all []string
	for k := range 12 {
		name := fmt.Sprintf("group-%02d", k)
		all = append(all, name)
		fmt.Fprintf(&b, "- name: %s\n  interval: 1s\n  rules:\n  - record: evaluated\n    expr: vector(%d)\n    labels: {group: %q}\n", name, k, name)
	}
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "team-a", "ha.yaml"), []byte(b.String()), 0o644))

	c := newCluster(t, 1)
	c.add("ing-1")
	c.add("quer-1")
	rulers := []string{"rul-1", "rul-2", "rul-3"}
	for _, id := range rulers {
		c.extra[id] = []string{"-ruler.rule-path=" + rulesDir, "-ruler.poll-interval=1s"}
		c.add(id)
	}

	// exactlyOnce waits until the rulers up list each group once between
	// them, and returns who has which.
	exactlyOnce := func(up []string, within time.Duration) map[string][]string {
		t.Helper()
		var owners map[string][]string
		require.Eventually(t, func() bool {
			owners = map[string][]string{}
			var seen []string
			for _, id := range up {
				gs := groupsOn(t, c, id)
				owners[id] = gs
				seen = append(seen, gs...)
			}
			slices.Sort(seen)
			return slices.Equal(seen, all)
		}, within, 100*time.Millisecond, "each group on exactly one of %v: %v", up, owners)
		return owners
	}
	before := exactlyOnce(rulers, 30*time.Second)
	for _, id := range rulers {
		require.NotEmpty(t, before[id], "%s evaluates a share: %v", id, before)
		// Asked without the local header, any ruler lists every group,
		// gathered from the others, sorted as one rule manager sorts.
		r, body := getRules(t, c.members[id].url(""), "team-a", "/prometheus/api/v1/rules")
		var names []string
		for _, g := range r.Data.Groups {
			names = append(names, g.Name)
		}
		require.Equal(t, all, names, "%s lists every group: %s", id, body)
		require.NotContains(t, body, "warnings")
	}
	// Steady state: it stays that way.
	for range 5 {
		time.Sleep(time.Second)
		require.Equal(t, before, exactlyOnce(rulers, time.Second))
	}

	// rul-2 dies: its groups move to the other two within the heartbeat
	// timeout (4s) plus a poll and an evaluation; nothing else moves.
	c.members["rul-2"].kill9(t)
	killed := time.Now()
	// Until the ring drops it, the dead ruler is named in the answer.
	_, body := getRules(t, c.members["rul-1"].url(""), "team-a", "/prometheus/api/v1/rules")
	require.Contains(t, body, "ruler rul-2 did not answer")
	after := exactlyOnce([]string{"rul-1", "rul-3"}, 20*time.Second)
	moved := time.Since(killed)
	t.Logf("rul-2's %d groups moved %v after its kill -9", len(before["rul-2"]), moved)
	for _, id := range []string{"rul-1", "rul-3"} {
		for _, g := range before[id] {
			require.Contains(t, after[id], g, "%s kept its own groups", id)
		}
	}

	// Back: it takes its own groups again, and only those.
	c.startMember("rul-2")
	require.Equal(t, before, exactlyOnce(rulers, 20*time.Second))

	// The recorded series of every group has no gap longer than the
	// takeover bound, through the kill and the return.
	window := time.Since(killed) + 10*time.Second
	code, r := queryAs(t, c.members["quer-1"], "team-a", "/query", map[string][]string{"query": {
		fmt.Sprintf(`max_over_time((time() - timestamp(evaluated))[%ds:1s])`, int(window.Seconds()))}})
	require.Equal(t, 200, code, r.Error)
	var res apicompare.QueryData
	require.NoError(t, json.Unmarshal(r.Data, &res))
	var vec []struct {
		Metric map[string]string `json:"metric"`
		Value  apicompare.Sample `json:"value"`
	}
	require.NoError(t, json.Unmarshal(res.Result, &vec))
	require.Len(t, vec, len(all), "every group recorded")
	for _, v := range vec {
		age, err := strconv.ParseFloat(v.Value[1].(string), 64)
		require.NoError(t, err)
		require.Less(t, age, 12.0, "group %s's longest gap through the kill and the return (s)", v.Metric["group"])
	}
	t.Logf("longest age of a group's recorded sample over the last %v: %s", window, res.Result)
}

// TestRulerTakeoverKeepsAlertsFiring: two rulers; the one evaluating a
// firing alert is killed with kill -9; the other takes the group over,
// restores the alert from ALERTS_FOR_STATE and keeps it firing, so
// Alertmanager never resolves it: no resolve/refire flap.
func TestRulerTakeoverKeepsAlertsFiring(t *testing.T) {
	hook := startWebhook(t)
	am := startAlertmanager(t, hook.url)
	rulesDir := filepath.Join(t.TempDir(), "rules")
	require.NoError(t, os.MkdirAll(filepath.Join(rulesDir, "team-a"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "team-a", "alerts.yaml"), []byte(`groups:
- name: always
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    for: 3s
`), 0o644))
	c := newCluster(t, 1)
	c.add("ing-1")
	for _, id := range []string{"rul-1", "rul-2"} {
		c.extra[id] = []string{"-ruler.rule-path=" + rulesDir, "-ruler.poll-interval=1s", "-ruler.alertmanager-url=" + am,
			"-ruler.resend-delay=3s", "-ruler.for-grace-period=1s"}
		c.add(id)
	}
	var owner, other string
	require.Eventually(t, func() bool {
		for _, id := range []string{"rul-1", "rul-2"} {
			if len(groupsOn(t, c, id)) == 1 {
				owner = id
			}
		}
		return owner != ""
	}, 30*time.Second, 100*time.Millisecond)
	other = map[string]string{"rul-1": "rul-2", "rul-2": "rul-1"}[owner]
	require.Eventually(t, func() bool { return len(hook.firing("AlwaysFiring")) > 0 }, 30*time.Second, 100*time.Millisecond)

	c.members[owner].kill9(t)
	// Past the alert's validity at Alertmanager (4 × resend delay: 12s),
	// which is when a ruler that stopped sending would see it resolved.
	deadline := time.Now().Add(14 * time.Second)
	for time.Now().Before(deadline) {
		body, err := httpGet(am + "/api/v2/alerts?active=true&silenced=false&inhibited=false")
		require.NoError(t, err)
		require.Contains(t, body, `"alertname":"AlwaysFiring"`, "Alertmanager still has the alert active")
		require.Empty(t, hook.resolved("AlwaysFiring"), "no resolution reached the webhook")
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, []string{"always"}, groupsOn(t, c, other), "%s took the group over", other)
	r, _ := getRules(t, c.members[other].url(""), "team-a", "/prometheus/api/v1/alerts")
	require.Len(t, r.Data.Alerts, 1)
	require.Equal(t, "firing", r.Data.Alerts[0]["state"], "restored as firing, not pending again")
}
