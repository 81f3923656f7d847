//go:build integration

package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func configCall(t *testing.T, o *orrery, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, o.url("/prometheus/config/v1/rules"+path), strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", "team-a")
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRulesConfigAPIAcrossRulers: a group posted to one ruler (as
// `mimirtool rules load` posts it) is listed by the other within seconds,
// evaluated by exactly one of them, survives kill -9 of both, and a
// deletion sent to the other reaches both; bad YAML is refused with the
// reason and disturbs nothing.
func TestRulesConfigAPIAcrossRulers(t *testing.T) {
	c := newCluster(t, 1)
	c.add("ing-1")
	c.add("quer-1")
	for _, id := range []string{"rul-1", "rul-2"} {
		c.extra[id] = []string{"-ruler.poll-interval=1s"}
		c.add(id)
	}
	r1, r2 := c.members["rul-1"], c.members["rul-2"]

	code, body := configCall(t, r1, http.MethodPost, "/recording", "name: api_group\ninterval: 1s\nrules:\n- record: api:evaluated\n  expr: vector(42)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		code, body := configCall(t, r2, http.MethodGet, "", "")
		return code == http.StatusOK && strings.Contains(body, "api:evaluated")
	}, 15*time.Second, 100*time.Millisecond, "the other ruler lists the group")

	evaluatedOnce := func() {
		t.Helper()
		require.Eventually(t, func() bool {
			n := len(groupsOn(t, c, "rul-1")) + len(groupsOn(t, c, "rul-2"))
			_, r := queryAs(t, c.members["quer-1"], "team-a", "/query", map[string][]string{"query": {`api:evaluated`}})
			return n == 1 && strings.Contains(string(r.Data), `"42"`)
		}, 20*time.Second, 200*time.Millisecond, "evaluated by one ruler, its series queryable")
	}
	evaluatedOnce()

	// Bad YAML and a bad rule: 400 with the reason; the group runs on.
	code, body = configCall(t, r2, http.MethodPost, "/recording", "name: broken\nrules:\n- record: x\n  expr: sum(\n")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "invalid rule group")
	code, body = configCall(t, r2, http.MethodPost, "/recording", "name: [")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "not a rule group")
	evaluatedOnce()

	// Durable: both rulers killed and restarted keep it.
	r1.kill9(t)
	r2.kill9(t)
	c.startMember("rul-1")
	c.startMember("rul-2")
	code, body = configCall(t, r1, http.MethodGet, "/recording/api_group", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "vector(42)")
	evaluatedOnce()

	// Deleted through the other ruler: gone everywhere, no longer evaluated.
	code, body = configCall(t, r2, http.MethodDelete, "/recording", "")
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		code, _ := configCall(t, r1, http.MethodGet, "", "")
		return code == http.StatusNotFound && len(groupsOn(t, c, "rul-1"))+len(groupsOn(t, c, "rul-2")) == 0
	}, 15*time.Second, 100*time.Millisecond, "the deletion reaches both rulers")
}
