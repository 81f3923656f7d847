package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

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
	write := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: []byte("name: g\nrules: []\n"), Version: 10, Writer: "r1"}
	later := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Content: []byte("name: g\nrules: [{record: x, expr: up}]\n"), Version: 20, Writer: "r2"}
	deleted := &storeEntry{Tenant: "a", Namespace: "ns", Group: "g", Version: 30, Writer: "r1"}
	other := &storeEntry{Tenant: "b", Namespace: "ns", Group: "g", Content: []byte("name: g\nrules: []\n"), Version: 5, Writer: "r3"}
	msgs := [][]byte{entriesJSON(t, write), entriesJSON(t, later), entriesJSON(t, deleted), entriesJSON(t, other)}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1, 2, 0}, {1, 3, 0, 2}}
	var states []string
	for _, order := range orders {
		s, err := OpenStore("", "x")
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
	s, _ := OpenStore("", "x")
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
	s, _ := OpenStore("", "x")
	s.limit = 1000
	_, err := s.Merge(entriesJSON(t,
		&storeEntry{Tenant: "a|b", Namespace: "ns", Group: "g", Content: []byte("x"), Version: 1, Writer: "w"},
		&storeEntry{Tenant: "../a", Namespace: "ns", Group: "g", Content: []byte("x"), Version: 1, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "x/y", Group: "g", Content: []byte("x"), Version: 1, Writer: "w"},
		&storeEntry{Tenant: "a", Namespace: "ns", Group: "big", Content: make([]byte, 2000), Version: 1, Writer: "w"},
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
	s, err := OpenStore(path, "r1")
	require.NoError(t, err)
	var published []string
	s.SetPublish(func(key string, _ []byte) { published = append(published, key) })
	require.NoError(t, s.put("a", "ns", map[string][]byte{"g": []byte("name: g\nrules: []\n")}))
	require.Equal(t, []string{"a/ns/g"}, published)
	again, err := OpenStore(path, "r1")
	require.NoError(t, err)
	require.Len(t, again.groups("a")["ns"], 1)
}

func configRuler(t *testing.T) *Ruler {
	t.Helper()
	s, err := OpenStore("", "r1")
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
	f.Add([]byte(`[{"tenant":"a","namespace":"ns","group":"g","content":"bmFtZTogZwo=","version":1,"writer":"w"}]`))
	f.Add([]byte(`[null,{}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := OpenStore("", "x")
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
	s, err := OpenStore("", "r1")
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
