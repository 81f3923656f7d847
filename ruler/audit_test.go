package ruler

// Tests from the ruler's hostile review: each failed on the first version.

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

type auditRing struct{ ids []string }

func (r auditRing) HealthyIDs(string) []string { return r.ids }

type auditLimits struct{}

func (auditLimits) For(string) *limits.Limits { return &limits.Limits{} }

type auditPusher struct {
	mu  sync.Mutex
	got map[string]int
}

func (p *auditPusher) Push(_ context.Context, id string, req *prompb.WriteRequest) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got == nil {
		p.got = map[string]int{}
	}
	p.got[id] += len(req.Timeseries)
	return len(req.Timeseries), nil
}

// blockingQueryable: a Select of tenant "slow" blocks until its ctx ends
// or release is closed; others return nothing.
type blockingQueryable struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingQueryable) Querier(int64, int64) (storage.Querier, error) { return bq{b}, nil }

type bq struct{ b *blockingQueryable }

func (q bq) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	if id, _ := tenant.FromContext(ctx); id == "slow" {
		q.b.once.Do(func() { close(q.b.entered) })
		select {
		case <-ctx.Done():
		case <-q.b.release:
		}
	}
	return storage.EmptySeriesSet()
}
func (bq) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (bq) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}
func (bq) Close() error { return nil }

func auditRuler(t *testing.T, dir string, q storage.Queryable, p Pusher) *Ruler {
	t.Helper()
	cfg := Config{RulePath: dir, PollInterval: time.Hour, EvaluationInterval: 100 * time.Millisecond,
		NotificationQueueCapacity: 10, NotificationTimeout: time.Second, ResendDelay: time.Minute}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Hour, LookbackDelta: 5 * time.Minute})
	r, err := New(cfg, "self", eng, q, p, nil, auditRing{ids: []string{"self"}}, nil, auditLimits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return r
}

func writeRules(t *testing.T, dir, id, name, body string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, id), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, id, name), []byte(body), 0o644))
}

// A tenant whose rule query is slow, and whose changed group's update
// therefore waits for it, holds up neither another tenant's rules API nor
// its sync.
func TestAuditSlowTenantBlocksOtherTenantsAPI(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "slow", "r.yaml", "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - record: x\n    expr: up\n")
	writeRules(t, dir, "other", "r.yaml", "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - record: y\n    expr: vector(1)\n")
	q := &blockingQueryable{entered: make(chan struct{}), release: make(chan struct{})}
	r := auditRuler(t, dir, q, &auditPusher{})
	require.NoError(t, r.Start(context.Background()))
	defer func() {
		close(q.release)
		_ = r.Stop(context.Background())
	}()
	select {
	case <-q.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("slow tenant's rule never queried")
	}
	// The slow tenant edits its group; the next poll applies it.
	writeRules(t, dir, "slow", "r.yaml", "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - record: x2\n    expr: up\n")
	go r.sync()
	time.Sleep(200 * time.Millisecond)

	got := make(chan bool, 1)
	go func() { got <- len(r.RulesFor("other").RuleGroups()) == 1 }()
	select {
	case ok := <-got:
		require.True(t, ok)
	case <-time.After(2 * time.Second):
		t.Fatal("tenant other's rules API blocked by tenant slow's in-flight rule query (r.mu held across manager.Update)")
	}
}

// The group limit is counted over the files that parse first, so every
// ruler admits the same of their groups, whether or not it holds a last
// good version of a broken file (only a ruler that read it before does).
func TestAuditLimitAgreesAcrossRulers(t *testing.T) {
	dir := t.TempDir()
	good := "groups:\n- name: a1\n  rules:\n  - record: a1\n    expr: up\n- name: a2\n  rules:\n  - record: a2\n    expr: up\n"
	writeRules(t, dir, "t", "a.yaml", good)
	writeRules(t, dir, "t", "b.yaml", "groups:\n- name: b1\n  rules:\n  - record: b1\n    expr: up\n")
	admitted := func(l *loader) map[string]bool {
		l.read([]string{"t/a.yaml", "t/b.yaml"}, 2, 0)
		out := map[string]bool{}
		for _, f := range []string{"t/a.yaml", "t/b.yaml"} {
			for _, g := range l.groups(f) {
				out[g.Name] = true
			}
		}
		return out
	}
	newL := func() *loader {
		return newLoader(dir, "t", auditParser(), slog.New(slog.DiscardHandler), func(error) {})
	}
	old := newL()
	require.Equal(t, map[string]bool{"a1": true, "a2": true}, admitted(old))
	// a.yaml breaks: the old ruler keeps its groups where the limit has
	// room; a ruler started now has none of them; both admit b1.
	writeRules(t, dir, "t", "a.yaml", "groups:\n- name: a1\n  rules:\n  - record: a1\n    expr: up ==(\n")
	require.Equal(t, map[string]bool{"b1": true, "a1": true}, admitted(old))
	require.Equal(t, map[string]bool{"b1": true}, admitted(newL()))
}

func auditParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// A tenant whose directory is removed loses its groups' managers once
// their stale markers are written; its notifier stays for a return.
func TestAuditRemovedTenantIsFreed(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "gone", "r.yaml", "groups:\n- name: g\n  rules:\n  - record: y\n    expr: vector(1)\n")
	r := auditRuler(t, dir, &blockingQueryable{entered: make(chan struct{}), release: make(chan struct{})}, &auditPusher{})
	require.NoError(t, r.Start(context.Background()))
	defer func() { _ = r.Stop(context.Background()) }()
	require.Len(t, r.RulesFor("gone").RuleGroups(), 1)
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "gone")))
	r.sync()
	require.Empty(t, r.RulesFor("gone").RuleGroups())
	time.Sleep(350 * time.Millisecond) // three intervals
	r.sync()
	r.mu.Lock()
	n := len(r.tenants["gone"].groups)
	r.mu.Unlock()
	require.Zero(t, n, "the removed tenant's group managers are stopped")
}

// A FIFO, a device or a huge file named *.yaml neither hangs the sync nor
// takes the ruler's memory.
func TestAuditFIFORuleFileHangsSync(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "t"), 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "t", "x.yaml"), 0o644))
	r := auditRuler(t, dir, &blockingQueryable{entered: make(chan struct{}), release: make(chan struct{})}, &auditPusher{})
	done := make(chan struct{})
	go func() { r.sync(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		// unblock the reader so the test process can exit
		if f, err := os.OpenFile(filepath.Join(dir, "t", "x.yaml"), os.O_WRONLY, 0); err == nil {
			_ = f.Close()
		}
		t.Fatal("sync hung reading a FIFO named *.yaml")
	}
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "t", "zero.yaml")))
	big := make([]byte, maxRuleFileBytes+10)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t", "big.yaml"), big, 0o644))
	var refused []error
	l := newLoader(dir, "t", auditParser(), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	l.read([]string{"t/big.yaml"}, 0, 0)
	require.Len(t, refused, 1)
	require.Contains(t, refused[0].Error(), "larger than")
	r.sync()
}
