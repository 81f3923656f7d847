package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/tenant"
)

func entriesJSON(t testing.TB, es ...*storeEntry) []byte {
	b, err := json.Marshal(es)
	require.NoError(t, err)
	return b
}

// Merge is a join: in any order, repeated or not, stores end equal; a
// deletion after a write wins, and a write before it cannot resurrect it.
func TestStoreMergeConverges(t *testing.T) {
	at := time.Now().UnixNano()
	write := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: "name: g\nrules: []\n", Version: at + 10, Writer: "r1"}
	later := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: "name: g\nrules:\n    - record: x\n      expr: up\n", Version: at + 20, Writer: "r2"}
	deleted := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Deleted: true, Version: at + 30, Writer: "r1"}
	other := &storeEntry{Tenant: "b", Namespace: "ns", Group: "g", Content: "name: g\nrules: []\n", Version: at + 5, Writer: "r3"}
	msgs := [][]byte{entriesJSON(t, write), entriesJSON(t, later), entriesJSON(t, deleted), entriesJSON(t, other)}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1, 2, 0}, {1, 3, 0, 2}}
	var states []string
	for _, order := range orders {
		s, err := OpenStore("", "x", discard())
		require.NoError(t, err)
		for _, k := range order {
			_, err := s.Merge(msgs[k])
			require.NoError(t, err)
		}
		states = append(states, string(s.State()))
		require.Empty(t, s.groups("a"), "deleted")
		require.Len(t, s.groups("b")["ns"], 1)
	}
	for _, st := range states[1:] {
		require.Equal(t, states[0], st)
	}
	s, _ := OpenStore("", "x", discard())
	changed, err := s.Merge([]byte(states[0]))
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = s.Merge([]byte(states[0]))
	require.NoError(t, err)
	require.False(t, changed, "idempotent")
}

// Entries a peer could forge are dropped: bad tenant ids, names with a
// slash, and more than the store's bound.
func TestStoreMergeRefusesForgedEntries(t *testing.T) {
	s, _ := OpenStore("", "x", discard())
	s.hardBytes = 1000
	now := time.Now().UnixNano()
	good := "name: g\nrules: []\n"
	_, err := s.Merge(entriesJSON(t,
		&storeEntry{Tenant: "a|b", Namespace: "ns", Group: "g", Content: good, Version: now, Writer: "w"},
		&storeEntry{Tenant: "../a", Namespace: "ns", Group: "g", Content: good, Version: now, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "x/y", Group: "g", Content: good, Version: now, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "other", Content: good, Version: now, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: "name: g\nrules: [{record: x, expr: 'sum('}]\n", Version: now, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: good, Version: now + int64(2*time.Hour), Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: good, Deleted: true, Version: now, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: strings.Replace(good, "rules", "bogus: 1\nrules", 1), Version: now, Writer: "w"},
	))
	require.NoError(t, err)
	require.Empty(t, s.tenants())
	_, err = s.Merge([]byte("not json"))
	require.Error(t, err)
}

// A write is on disk before it is acknowledged, and a reopened store
// holds it.
func TestStoreIsDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ruler", "api-rules.json")
	s, err := OpenStore(path, "r1", discard())
	require.NoError(t, err)
	var published []string
	s.SetPublish(func(key string, _ []byte) { published = append(published, key) })
	g := "name: g\nrules: []\n"
	require.NoError(t, s.put("a", "ns", map[string]*string{"g": &g}))
	require.Equal(t, []string{"a/ns/g"}, published)
	again, err := OpenStore(path, "r1", discard())
	require.NoError(t, err)
	require.Len(t, again.groups("a")["ns"], 1)
}

func configRuler(t *testing.T) *Ruler {
	t.Helper()
	s, err := OpenStore("", "r1", discard())
	require.NoError(t, err)
	r, err := New(Config{RulePath: t.TempDir(), PollInterval: time.Hour, EvaluationInterval: time.Minute, NotificationQueueCapacity: 1,
		NotificationTimeout: time.Second, ResendDelay: time.Minute}, "r1", nil, nil, nil, s, &fixedRulers{}, nil, limitsOf{groups: 2, rules: 2}, nil, discard())
	require.NoError(t, err)
	return r
}

func callConfig(t *testing.T, r *Ruler, method, path, tenantID, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tenantID != "" {
		req = req.WithContext(tenant.WithID(context.Background(), tenantID))
	}
	w := httptest.NewRecorder()
	r.ConfigAPI(discard()).ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// The API as mimirtool uses it: post, list, get, delete, with YAML in
// and out, per tenant, and clear 4xx for what is wrong.
func TestConfigAPI(t *testing.T) {
	r := configRuler(t)
	code, body := callConfig(t, r, http.MethodGet, ConfigPath, "a", "")
	require.Equal(t, http.StatusNotFound, code, body)

	code, body = callConfig(t, r, http.MethodPost, ConfigPath+"/alerts", "a", "name: targets\nrules:\n- alert: Down\n  expr: up == 0\n  for: 30s\n")
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = callConfig(t, r, http.MethodGet, ConfigPath, "a", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "alerts:\n    - name: targets\n      rules:\n        - alert: Down\n          expr: up == 0\n          for: 30s\n", body)
	code, body = callConfig(t, r, http.MethodGet, ConfigPath+"/alerts/targets", "a", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "name: targets")
	code, _ = callConfig(t, r, http.MethodGet, ConfigPath, "b", "")
	require.Equal(t, http.StatusNotFound, code, "another tenant sees nothing")

	for _, tc := range []struct {
		path, body, want string
		code             int
	}{
		{ConfigPath + "/alerts", "name: x\nrules:\n- alert: A\n  expr: up ==\n", "invalid rule group", 400},
		{ConfigPath + "/alerts", "name: x\nrules: [}", "not a rule group", 400},
		{ConfigPath + "/alerts", "name: x\nbogus: 1\nrules: []\n", "bogus", 400},
		{ConfigPath + "/alerts", "", "empty rule group", 400},
		{ConfigPath + "/alerts", "name: x\nrules: [{record: a, expr: up}, {record: b, expr: up}, {record: c, expr: up}]\n", "ruler_max_rules_per_rule_group", 400},
		{ConfigPath + "/x.yaml", "name: x\nrules: []\n", "must not end in .yaml", 400},
		{ConfigPath + "/a%2Fb", "name: x\nrules: []\n", "without '/'", 400},
		{ConfigPath + "/alerts/g/extra", "", "at most", 404},
		{ConfigPath + "/alerts", strings.Repeat("#", maxRuleGroupBytes+1), "over", 413},
		{ConfigPath + "/alerts", "name: a;b\nrules: []\n", "';'", 400},
		{ConfigPath + "/alerts", "name: \"a\\nb\"\nrules: []\n", "control", 400},
	} {
		code, body := callConfig(t, r, http.MethodPost, tc.path, "a", tc.body)
		require.Equal(t, tc.code, code, "%s %q: %s", tc.path, tc.body[:min(len(tc.body), 40)], body)
		require.Contains(t, body, tc.want)
	}
	code, body = callConfig(t, r, http.MethodPost, ConfigPath+"/alerts", "", "name: x\nrules: []\n")
	require.Equal(t, http.StatusUnauthorized, code, body)

	// The tenant's group limit (2).
	code, _ = callConfig(t, r, http.MethodPost, ConfigPath+"/more", "a", "name: second\nrules: []\n")
	require.Equal(t, http.StatusAccepted, code)
	code, body = callConfig(t, r, http.MethodPost, ConfigPath+"/more", "a", "name: third\nrules: []\n")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "ruler_max_rule_groups_per_tenant")
	code, _ = callConfig(t, r, http.MethodPost, ConfigPath+"/more", "a", "name: second\nrules: [{record: r, expr: up}]\n")
	require.Equal(t, http.StatusAccepted, code, "replacing a group is within the limit")

	code, _ = callConfig(t, r, http.MethodDelete, ConfigPath+"/alerts/targets", "a", "")
	require.Equal(t, http.StatusAccepted, code)
	code, _ = callConfig(t, r, http.MethodGet, ConfigPath+"/alerts", "a", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = callConfig(t, r, http.MethodDelete, ConfigPath+"/more", "a", "")
	require.Equal(t, http.StatusAccepted, code)
	code, _ = callConfig(t, r, http.MethodDelete, ConfigPath+"/more", "a", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = callConfig(t, r, http.MethodPut, ConfigPath+"/more", "a", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	_ = fmt.Sprint
}

// FuzzStoreMerge: any gossiped bytes are merged or refused, never a panic,
// and what is merged is only valid entries.
func FuzzStoreMerge(f *testing.F) {
	f.Add([]byte(`[{"tenant":"a","namespace":"ns","group":"g","content":"name: g\nrules: []\n","version":1,"writer":"w"}]`))
	f.Add([]byte(`[null,{}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := OpenStore("", "x", discard())
		_, _ = s.Merge(b)
		for _, id := range s.tenants() {
			require.NoError(t, tenant.Validate(id))
		}
		_ = s.State()
	})
}

// FuzzConfigPost: any body posted to the API is stored or refused with a
// 4xx, never a panic or a 5xx.
func FuzzConfigPost(f *testing.F) {
	f.Add("name: g\nrules:\n- record: r\n  expr: sum(up)\n")
	f.Add("name: g\nrules: [{alert: A, expr: 'up == 0', for: 1m, labels: {a: b}, annotations: {d: '{{ $value }}'}}]\n")
	f.Add("{")
	f.Fuzz(func(t *testing.T, body string) {
		r := configRuler(t)
		code, msg := callConfig(t, r, http.MethodPost, ConfigPath+"/ns", "a", body)
		if code != http.StatusAccepted {
			require.True(t, code >= 400 && code < 500, "%d: %s", code, msg)
		}
	})
}

// A group posted through the API is evaluated like a rule file's.
func TestAPIGroupIsEvaluated(t *testing.T) {
	s, err := OpenStore("", "r1", discard())
	require.NoError(t, err)
	rulers := &fixedRulers{ids: []string{"r1"}}
	dir := filepath.Join(t.TempDir(), "absent") // no rule files at all
	p := &recorder{samples: map[string][]prompb.Sample{}, tenants: map[string]bool{}}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute})
	empty := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
	r, err := New(Config{RulePath: dir, PollInterval: time.Hour, EvaluationInterval: 50 * time.Millisecond, NotificationQueueCapacity: 10,
		NotificationTimeout: time.Second, ResendDelay: time.Second}, "r1", engine, empty, p, s, rulers, nil, testLimits{}, nil, discard())
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	code, body := callConfig(t, r, http.MethodPost, ConfigPath+"/ns", "team-a", "name: g\nrules:\n- record: from_api\n  expr: vector(1)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		n, _ := p.count("from_api")
		return n > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "team-a/ns", r.RulesFor("team-a").RuleGroups()[0].File())
}

// Rulers' answers merge into one: groups sorted by file and name, alerts
// joined, a missing ruler named in warnings; garbage is an error.
func TestMergeAnswers(t *testing.T) {
	a := []byte(`{"status":"success","data":{"groups":[{"file":"t/b","name":"x","rules":[]}]}}`)
	b := []byte(`{"status":"success","data":{"groups":[{"file":"t/a","name":"z","rules":[]},{"file":"t/b","name":"a","rules":[]}]}}`)
	got, err := mergeAnswers([][]byte{a, b}, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"status":"success","data":{"groups":[{"file":"t/a","name":"z","rules":[]},{"file":"t/b","name":"a","rules":[]},{"file":"t/b","name":"x","rules":[]}]}}`, string(got))
	got, err = mergeAnswers([][]byte{[]byte(`{"status":"success","data":{"alerts":[]}}`), []byte(`{"status":"success","data":{"alerts":[{"state":"firing"}]}}`)}, []string{"ruler r2 did not answer"})
	require.NoError(t, err)
	require.JSONEq(t, `{"status":"success","data":{"alerts":[{"state":"firing"}]},"warnings":["ruler r2 did not answer"]}`, string(got))
	_, err = mergeAnswers([][]byte{a, []byte("<html>")}, nil)
	require.Error(t, err)
}

// From the config API's review: what one tenant, a full disk or a damaged
// file can do to the store.
func TestStoreBounds(t *testing.T) {
	s, _ := OpenStore("", "r1", discard())
	r := configRuler(t)
	r.store = s
	r.limits = limitsOf{}
	pad := strings.Repeat("x", 200<<10)
	accepted := 0
	for k := range 20 {
		code, body := callConfig(t, r, http.MethodPost, ConfigPath+"/ns", "evil",
			fmt.Sprintf("name: g%d\nrules:\n- alert: A\n  expr: up == 0\n  annotations: {pad: %s}\n", k, pad))
		if code == http.StatusAccepted {
			accepted++
			continue
		}
		require.Equal(t, http.StatusRequestEntityTooLarge, code, body)
		require.Contains(t, body, "delete or shrink")
	}
	require.Less(t, accepted, 20)
	require.Less(t, len(s.State()), maxTenantStoreBytes+64<<10, "one tenant stays within its bound")
	code, _ := callConfig(t, r, http.MethodPost, ConfigPath+"/ns", "other", "name: g\nrules: []\n")
	require.Equal(t, http.StatusAccepted, code, "another tenant still writes")

	// Deletions count too, and are forgotten after TombstoneTTL.
	code, _ = callConfig(t, r, http.MethodDelete, ConfigPath+"/ns", "evil", "")
	require.Equal(t, http.StatusAccepted, code)
	s.tenantBytes = 64 << 10 // a smaller bound, reached sooner
	for k := 0; ; k++ {
		name := fmt.Sprintf("t%d-%s", k, strings.Repeat("y", 200))
		code, _ := callConfig(t, r, http.MethodPost, ConfigPath+"/ns2", "evil", "name: "+name+"\nrules: []\n")
		if code != http.StatusAccepted {
			require.Equal(t, http.StatusRequestEntityTooLarge, code)
			break
		}
		code, _ = callConfig(t, r, http.MethodDelete, ConfigPath+"/ns2/"+name, "evil", "")
		require.Equal(t, http.StatusAccepted, code)
		require.Less(t, k, 1000, "deletions are bounded")
	}
	s.now = func() time.Time { return time.Now().Add(TombstoneTTL + time.Hour) }
	code, body := callConfig(t, r, http.MethodPost, ConfigPath+"/ns2", "evil", "name: again\nrules: []\n")
	require.Equal(t, http.StatusAccepted, code, "old deletions forgotten: %s", body)
}

// A write that cannot be kept on disk changes nothing and says so; a
// damaged file is moved aside and the ruler starts.
func TestStoreDiskFailures(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "sub")
	s, err := OpenStore(filepath.Join(blocker, "api-rules.json"), "r1", discard())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(blocker, nil, 0o644)) // its directory cannot be made
	g := "name: g\nrules: []\n"
	err = s.put("a", "ns", map[string]*string{"g": &g})
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, apierr.HTTPStatus(err))
	require.NotContains(t, err.Error(), dir, "no server path")
	require.Empty(t, s.tenants(), "nothing changed")

	path := filepath.Join(dir, "api-rules.json")
	require.NoError(t, os.WriteFile(path, []byte(`[{"tenant":"a",`), 0o644))
	s, err = OpenStore(path, "r1", discard())
	require.NoError(t, err)
	require.Empty(t, s.tenants())
	_, err = os.Stat(path + ".corrupt")
	require.NoError(t, err, "moved aside")
}

// A namespace that is one of the tenant's rule files is refused: its
// groups would run twice.
func TestConfigAPIRefusesARuleFileNamespace(t *testing.T) {
	r := configRuler(t)
	require.NoError(t, os.MkdirAll(filepath.Join(r.cfg.RulePath, "a"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(r.cfg.RulePath, "a", "alerts.yml"), []byte("groups: []\n"), 0o644))
	code, body := callConfig(t, r, http.MethodPost, ConfigPath+"/alerts", "a", "name: g\nrules: []\n")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "rule file alerts.yml")
}
