package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/limits"
)

// recorder is a Pusher that keeps what it was sent, by the record label.
type recorder struct {
	mu      sync.Mutex
	samples map[string][]prompb.Sample
	tenants map[string]bool
}

func (p *recorder) Push(_ context.Context, tenantID string, req *prompb.WriteRequest) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tenants[tenantID] = true
	for _, ts := range req.Timeseries {
		for _, l := range ts.Labels {
			if l.Name == "__name__" {
				p.samples[l.Value] = append(p.samples[l.Value], ts.Samples...)
			}
		}
	}
	return len(req.Timeseries), nil
}

func (p *recorder) count(name string) (values, stale int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.samples[name] {
		if value.IsStaleNaN(s.Value) {
			stale++
		} else {
			values++
		}
	}
	return values, stale
}

type fixedRulers struct {
	mu  sync.Mutex
	ids []string
}

func (f *fixedRulers) HealthyIDs(string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids
}

func (f *fixedRulers) set(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = ids
}

type testLimits struct{}

func (testLimits) For(string) *limits.Limits { return &limits.Limits{} }

func newTestRuler(t *testing.T, dir string, rulers *fixedRulers) (*Ruler, *recorder) {
	t.Helper()
	p := &recorder{samples: map[string][]prompb.Sample{}, tenants: map[string]bool{}}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute})
	empty := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
	cfg := Config{RulePath: dir, PollInterval: time.Hour, EvaluationInterval: 50 * time.Millisecond, NotificationQueueCapacity: 10,
		NotificationTimeout: time.Second, ResendDelay: time.Second, OutageTolerance: time.Hour, ForGracePeriod: time.Second}
	r, err := New(cfg, "r1", engine, empty, p, nil, rulers, nil, testLimits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r, p
}

// groupOwnedBy returns a group name that owner gives to want among ids.
func groupOwnedBy(t *testing.T, want string, ids []string, prefix string) string {
	for k := range 1000 {
		name := fmt.Sprintf("%s-%d", prefix, k)
		if owner(ids, "team-a", "ns", name) == want {
			return name
		}
	}
	t.Fatal("no group name found")
	return ""
}

// A group that moves to another ruler stops here without stale markers,
// which would cut the series the new owner writes on; a group deleted
// from the files gets its stale markers, as in Prometheus.
func TestMovedGroupWritesNoStaleMarkers(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "team-a"), 0o755))
	moving := groupOwnedBy(t, "r2", []string{"r1", "r2"}, "moving")
	deleted := groupOwnedBy(t, "r1", []string{"r1", "r2"}, "deleted")
	write := func(groups ...string) {
		content := "groups:\n"
		for _, g := range groups {
			content += fmt.Sprintf("- name: %s\n  rules:\n  - record: %s_out\n    expr: vector(1)\n", g, g)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "team-a", "ns.yaml"), []byte(content), 0o644))
	}
	write(moving, deleted)
	rulers := &fixedRulers{ids: []string{"r1"}}
	r, p := newTestRuler(t, dir, rulers)
	require.Eventually(t, func() bool {
		a, _ := p.count(moving + "_out")
		b, _ := p.count(deleted + "_out")
		return a > 2 && b > 2
	}, 10*time.Second, 10*time.Millisecond, "r1 evaluates both while alone")
	require.True(t, p.tenants["team-a"])
	require.Len(t, p.tenants, 1)

	// r2 joins and wins the moving group.
	rulers.set("r1", "r2")
	r.sync()
	before, _ := p.count(moving + "_out")
	time.Sleep(400 * time.Millisecond)
	after, stale := p.count(moving + "_out")
	require.Zero(t, stale, "no stale markers for a group that moved")
	require.LessOrEqual(t, after, before+1, "r1 stopped evaluating it")
	require.Len(t, r.RulesFor("team-a").RuleGroups(), 1)

	// The other is deleted from the file: stale markers, as Prometheus.
	write()
	r.sync()
	require.Eventually(t, func() bool {
		_, stale := p.count(deleted + "_out")
		return stale > 0
	}, 5*time.Second, 10*time.Millisecond, "a deleted group's series get stale markers")
	require.Empty(t, r.RulesFor("team-a").RuleGroups())
	time.Sleep(200 * time.Millisecond) // past three intervals
	r.sync()
	r.mu.Lock()
	left := len(r.tenants["team-a"].groups)
	r.mu.Unlock()
	require.Zero(t, left, "the deleted group's manager is gone after its stale markers")
}

// A large output is pushed in batches, each within the distributor's
// limits, and a refused batch does not stop the rest.
func TestAppenderBatches(t *testing.T) {
	p := &batchRecorder{}
	ap := appendable{pusher: p, tenant: "t"}.AppenderV2(context.Background())
	for k := range 2*distributor.MaxBatchSeries + 10 {
		_, err := ap.Append(0, labels.FromStrings("__name__", "x", "k", strconv.Itoa(k)), 0, 1000, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.ErrorContains(t, ap.Commit(), "refused")
	require.Equal(t, []int{distributor.MaxBatchSeries, distributor.MaxBatchSeries, 10}, p.sizes)
}

type batchRecorder struct{ sizes []int }

func (b *batchRecorder) Push(_ context.Context, _ string, req *prompb.WriteRequest) (int, error) {
	b.sizes = append(b.sizes, len(req.Timeseries))
	if len(b.sizes) == 1 {
		return 0, errors.New("refused")
	}
	return len(req.Timeseries), nil
}

type limitsOf struct{ groups, rules int }

func (l limitsOf) For(string) *limits.Limits {
	return &limits.Limits{RulerMaxRuleGroupsPerTenant: l.groups, RulerMaxRulesPerRuleGroup: l.rules}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// With -ruler.alertmanager-send-tenant-header, alerts reach Alertmanager's
// v2 API with the tenant in X-Scope-OrgID, for a multi-tenant one; a
// tenant's ruler_alertmanager_url sends its alerts there instead.
func TestNotificationsCarryTheTenant(t *testing.T) {
	got := make(chan [2]string, 100)
	capture := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- [2]string{name + " " + r.URL.Path, r.Header.Get("X-Scope-OrgID")}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	global, own := capture("global"), capture("own")
	dir := t.TempDir()
	for _, id := range []string{"team-a", "team-b"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, id), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, id, "a.yaml"), []byte("groups:\n- name: g\n  rules:\n  - alert: Always\n    expr: vector(1)\n"), 0o644))
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute})
	empty := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
	p := &recorder{samples: map[string][]prompb.Sample{}, tenants: map[string]bool{}}
	r, err := New(Config{RulePath: dir, PollInterval: time.Hour, EvaluationInterval: 50 * time.Millisecond, NotificationQueueCapacity: 10,
		NotificationTimeout: time.Second, ResendDelay: 50 * time.Millisecond, AlertmanagerURL: global.URL, SendTenantHeader: true},
		"r1", engine, empty, p, nil, &fixedRulers{ids: []string{"r1"}}, nil, ownURL{"team-b": own.URL}, nil, discard())
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	seen := map[[2]string]bool{}
	require.Eventually(t, func() bool {
		for {
			select {
			case g := <-got:
				seen[g] = true
			default:
				return seen[[2]string{"global /api/v2/alerts", "team-a"}] && seen[[2]string{"own /api/v2/alerts", "team-b"}]
			}
		}
	}, 10*time.Second, 20*time.Millisecond, "seen: %v", seen)
	require.False(t, seen[[2]string{"global /api/v2/alerts", "team-b"}], "team-b's alerts go to its own Alertmanager only")
}

type ownURL map[string]string

func (o ownURL) For(id string) *limits.Limits { return &limits.Limits{RulerAlertmanagerURL: o[id]} }
