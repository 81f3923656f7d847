package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/tenant"
)

// Component is the ruler's name in the ring's component lists.
const Component = "ruler"

// Ring is what the ruler needs of the ring: the rulers sharing the work.
type Ring interface {
	HealthyIDs(component string) []string
}

// Limits gives a tenant's limits.
type Limits interface {
	For(tenantID string) *limits.Limits
}

// Ruler evaluates every tenant's rule groups it owns; see the package doc.
type Ruler struct {
	cfg       Config
	self      string
	engine    promql.QueryEngine
	queryable storage.Queryable
	pusher    Pusher
	store     *Store
	ring      Ring
	limits    Limits
	reg       prometheus.Registerer
	logger    *slog.Logger
	external  *url.URL
	metrics   *rules.Metrics
	parser    parser.Parser

	changed <-chan struct{}
	stop    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	tenants map[string]*tenantRules
	stopped bool

	configErrors *prometheus.CounterVec
	owned        *prometheus.GaugeVec
	syncs        prometheus.Counter
}

// tenantRules is one tenant's rule groups on this ruler and its
// notifier.
type tenantRules struct {
	// mu is held by the tenant's sync, which may wait for an evaluation
	// to end (rules.Manager.Update stops a changed group first): one
	// tenant's slow query holds up nobody else's sync or API.
	mu sync.Mutex
	// view is what the rules and alerts APIs show, replaced at the end of
	// each sync, read without a lock.
	view atomic.Pointer[Retriever]

	loader       *loader
	notifier     *notifier.Manager
	notifierDone chan struct{} // closed when the notifier's Run returned
	targets      chan map[string][]*targetgroup.Group
	amURLs       string // the Alertmanager URLs the notifier was configured with
	// groups are the groups this ruler evaluates, by rules.GroupKey,
	// each in a rule manager of its own: a group that moves to another
	// ruler is stopped without the stale markers Prometheus writes for a
	// deleted group, which would cut the new owner's series.
	groups map[string]*groupRunner
}

// groupRunner is one group's rule manager.
type groupRunner struct {
	manager *rules.Manager
	// removed is when the group left the tenant's files; the manager
	// lives on for a few intervals so that it writes the group's stale
	// markers, as Prometheus does for a deleted group.
	removed  time.Time
	interval time.Duration
}

// New returns a ruler; it evaluates nothing until Start. self is this
// process's ring id; ringChanged, when not nil, wakes it when the ring
// changes, so owned groups move without waiting for the poll.
// store, when not nil, holds the groups of the rules configuration API.
func New(cfg Config, self string, engine promql.QueryEngine, queryable storage.Queryable, pusher Pusher, store *Store, r Ring, ringChanged <-chan struct{}, l Limits, reg prometheus.Registerer, logger *slog.Logger) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var external *url.URL
	if cfg.ExternalURL != "" {
		external, _ = url.Parse(cfg.ExternalURL)
	}
	f := promauto.With(reg)
	return &Ruler{
		cfg: cfg, self: self, engine: engine, queryable: queryable, pusher: pusher, store: store, ring: r, limits: l,
		reg: reg, logger: logger, external: external, metrics: rules.NewGroupMetrics(reg),
		parser:  parser.NewParser(parser.Options{}),
		changed: ringChanged, stop: make(chan struct{}), done: make(chan struct{}),
		tenants: map[string]*tenantRules{},
		configErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ruler_config_errors_total",
			Help: "Rule files and rule groups the ruler refused (invalid, or over a limit), per tenant; the log says which and why."}, []string{"tenant"}),
		owned: f.NewGaugeVec(prometheus.GaugeOpts{Name: "orrery_ruler_owned_rule_groups",
			Help: "Rule groups this ruler evaluates, per tenant."}, []string{"tenant"}),
		syncs: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ruler_syncs_total",
			Help: "Times the ruler re-read the rule files and the ring."}),
	}, nil
}

// Start loads the rules and keeps them in sync with the files and the
// ring every PollInterval, and when the ring changes.
func (r *Ruler) Start(context.Context) error {
	r.sync()
	go r.loop()
	return nil
}

func (r *Ruler) loop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	var stored <-chan struct{}
	if r.store != nil {
		stored = r.store.Changed()
	}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.changed:
		case <-stored:
		}
		r.sync()
	}
}

// Stop stops evaluating, then the notifiers, after they sent what they
// hold (Prometheus's DrainOnShutdown) or ctx ends.
func (r *Ruler) Stop(ctx context.Context) error {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	r.stopped = true
	tenants := r.tenants
	r.mu.Unlock()
	for _, t := range tenants {
		t.mu.Lock()
		for key, run := range t.groups {
			r.stopRunner(key, run)
		}
		t.mu.Unlock()
	}
	for _, t := range tenants {
		t.notifier.Stop()
	}
	for _, t := range tenants {
		select {
		case <-t.notifierDone:
		case <-ctx.Done():
			return fmt.Errorf("ruler: notifications not all sent at shutdown: %w", ctx.Err())
		}
	}
	return nil
}

// sync re-reads the tenants' rule files and applies what this ruler
// owns. Each tenant syncs on its own goroutine: one tenant waiting for a
// slow evaluation to end delays only itself, and a tenant still syncing
// from the last round is skipped this round.
func (r *Ruler) sync() {
	r.syncs.Inc()
	rulers := r.ring.HealthyIDs(Component)
	files, skip, ok := r.listFiles()
	if !ok {
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	// A tenant whose directory went away syncs with no files, so that
	// its groups stop and their series get stale markers.
	for id := range r.tenants {
		if _, ok := files[id]; !ok && !skip[id] {
			files[id] = nil
		}
	}
	work := map[string]*tenantRules{}
	for id, fs := range files {
		t := r.tenants[id]
		if t == nil {
			if len(fs) == 0 {
				continue
			}
			t = r.newTenant(id)
			r.tenants[id] = t
		}
		work[id] = t
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for id, t := range work {
		if !t.mu.TryLock() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.mu.Unlock()
			r.syncTenant(id, t, files[id], rulers)
		}()
	}
	wg.Wait()
}

// syncTenant applies one tenant's files and the ring; t.mu is held.
func (r *Ruler) syncTenant(id string, t *tenantRules, fs []string, rulers []string) {
	lim := r.limits.For(id)
	r.configureNotifier(id, t, lim)
	t.loader.read(fs, lim.RulerMaxRuleGroupsPerTenant, lim.RulerMaxRulesPerRuleGroup)
	now := time.Now()
	seen := map[string]bool{}
	for _, file := range fs {
		for _, g := range t.loader.groups(file) {
			key := rules.GroupKey(file, g.Name)
			seen[key] = true
			run := t.groups[key]
			if owner(rulers, id, namespaceOf(file), g.Name) != r.self {
				if run != nil {
					// Moved to another ruler, which writes its series on:
					// stopped, no stale markers.
					r.stopRunner(key, run)
					delete(t.groups, key)
				}
				continue
			}
			if run == nil {
				run = r.newRunner(id, t, g.Name)
				t.groups[key] = run
			}
			run.removed = time.Time{}
			run.interval = r.cfg.EvaluationInterval
			if g.Interval != 0 {
				run.interval = time.Duration(g.Interval)
			}
			if err := run.manager.Update(r.cfg.EvaluationInterval, []string{file}, labels.EmptyLabels(), r.externalURL(), r.evalIteration(id)); err != nil {
				// oneGroup never fails; a failure here is the manager's.
				r.logger.Error("updating a rule group", "tenant", id, "group", key, "err", err)
			}
		}
	}
	var view Retriever
	for key, run := range t.groups {
		switch {
		case seen[key]:
			view = append(view, run.manager)
		case run.removed.IsZero():
			// Gone from the files: its manager drops it and writes
			// stale markers for its series two intervals later.
			run.removed = now
			_ = run.manager.Update(r.cfg.EvaluationInterval, nil, labels.EmptyLabels(), r.externalURL(), nil)
		case now.Sub(run.removed) > 3*run.interval:
			r.stopRunner(key, run)
			delete(t.groups, key)
		}
	}
	t.view.Store(&view)
	r.owned.WithLabelValues(id).Set(float64(len(view)))
}

// listFiles returns each tenant's rule files, sorted, by tenant id, as
// paths relative to the rule path. ok is false when the rule path could
// not be read: nothing is known, and nothing must be taken as deleted. A
// tenant whose directory could not be read is left out of files and put
// in skip, for the same reason.
func (r *Ruler) listFiles() (files map[string][]string, skip map[string]bool, ok bool) {
	files, skip = map[string][]string{}, map[string]bool{}
	dirs, err := os.ReadDir(r.cfg.RulePath)
	if errors.Is(err, os.ErrNotExist) {
		// No rule files; the API's groups below still are.
		dirs, err = nil, nil
	}
	if err != nil {
		r.logger.Error("listing rule files: nothing changes until it can be read", "path", r.cfg.RulePath, "err", err)
		return nil, nil, false
	}
	for _, d := range dirs {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		id := d.Name()
		if err := tenant.Validate(id); err != nil {
			r.logger.Warn("rule directory is not a tenant id: ignored", "dir", filepath.Join(r.cfg.RulePath, id), "err", err)
			continue
		}
		entries, err := os.ReadDir(filepath.Join(r.cfg.RulePath, id))
		if err != nil {
			r.logger.Error("listing a tenant's rule files: its rules stay as they are", "tenant", id, "err", err)
			skip[id] = true
			continue
		}
		var fs []string
		for _, e := range entries {
			name := e.Name()
			// Kubernetes mounts a ConfigMap's keys as symlinks beside
			// hidden ..data directories: follow the links, skip the rest.
			if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			// Regular files only: a FIFO or a device would block or
			// never end the read. The loader bounds the size.
			if info, err := os.Stat(filepath.Join(r.cfg.RulePath, id, name)); err != nil || !info.Mode().IsRegular() {
				continue
			}
			// Relative to the rule path: a group's file is part of its key,
			// which fixes its evaluation times (rules.Group.EvalTimestamp),
			// so every ruler must name it alike wherever its files are
			// mounted; and a tenant sees no server path in the API.
			fs = append(fs, id+"/"+name)
		}
		slices.Sort(fs)
		files[id] = fs
	}
	if r.store != nil {
		// The API's namespaces, named tenant/namespace: without the
		// extension every rule file has, they are never taken for one.
		for _, id := range r.store.tenants() {
			if skip[id] {
				continue
			}
			for ns := range r.store.groups(id) {
				files[id] = append(files[id], id+"/"+ns)
			}
			slices.Sort(files[id])
		}
	}
	return files, skip, true
}

func (r *Ruler) externalURL() string {
	if r.external == nil {
		return ""
	}
	return r.external.String()
}

// newTenant makes a tenant's rule manager and notifier, both running.
func (r *Ruler) newTenant(id string) *tenantRules {
	logger := r.logger.With("tenant", id)
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": id}, r.reg)
	header := r.cfg.SendTenantHeader
	n := notifier.NewManager(&notifier.Options{
		QueueCapacity:   r.cfg.NotificationQueueCapacity,
		DrainOnShutdown: true,
		Registerer:      reg,
		Do: func(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
			if header {
				req.Header.Set(tenant.HeaderName, id)
			}
			return client.Do(req.WithContext(ctx))
		},
	}, model.UTF8Validation, logger.With("component", "notifier"))
	t := &tenantRules{notifier: n, targets: make(chan map[string][]*targetgroup.Group, 1), notifierDone: make(chan struct{})}
	go func() {
		defer close(t.notifierDone)
		n.Run(t.targets)
	}()
	t.loader = newLoader(r.cfg.RulePath, id, r.parser, logger, func(err error) {
		r.configErrors.WithLabelValues(id).Inc()
		logger.Error("rules refused", "err", err)
	})
	t.loader.store = r.store
	t.groups = map[string]*groupRunner{}
	return t
}

// newRunner makes the rule manager of one of the tenant's groups,
// running; Update gives it the group.
func (r *Ruler) newRunner(id string, t *tenantRules, group string) *groupRunner {
	m := rules.NewManager(&rules.ManagerOptions{
		ExternalURL:  r.external,
		QueryFunc:    r.boundedQuery(id, rules.EngineQueryFunc(r.engine, r.queryable)),
		NotifyFunc:   rules.SendAlerts(t.notifier, r.externalURL()),
		Context:      tenant.WithID(context.Background(), id),
		AppendableV2: appendable{pusher: r.pusher, tenant: id},
		Queryable:    boundedQueryable{Queryable: r.queryable, timeout: func() time.Duration { return r.queryTimeout(id) }},
		// Its start and stop are logged at debug: groups come and go
		// with ownership.
		Logger:  slog.New(debugOnly{r.logger.With("tenant", id, "group", group).Handler()}),
		Metrics: r.metrics,
		// A new manager restores its alerts' `for` state from
		// ALERTS_FOR_STATE: after a restart, and for a group that moved
		// here from another ruler.
		OutageTolerance: r.cfg.OutageTolerance,
		ForGracePeriod:  r.cfg.ForGracePeriod,
		ResendDelay:     r.cfg.ResendDelay,
		GroupLoader:     oneGroup{l: t.loader, name: group},
		Parser:          r.parser,
	})
	go m.Run()
	return &groupRunner{manager: m, interval: r.cfg.EvaluationInterval}
}

// stopRunner stops a group's manager and drops its group's metrics, which
// the manager keeps after a stop.
func (r *Ruler) stopRunner(key string, run *groupRunner) {
	run.manager.Stop()
	for _, v := range []*prometheus.GaugeVec{r.metrics.GroupInterval, r.metrics.GroupLastEvalTime, r.metrics.GroupLastDuration,
		r.metrics.GroupLastRuleDurationSum, r.metrics.GroupLastRestoreDuration, r.metrics.GroupRules, r.metrics.GroupSamples} {
		v.DeleteLabelValues(key)
	}
	for _, v := range []*prometheus.CounterVec{r.metrics.IterationsMissed, r.metrics.IterationsScheduled, r.metrics.EvalTotal, r.metrics.EvalFailures} {
		v.DeleteLabelValues(key)
	}
}

// evalIteration is the rule manager's evaluation of a group, as
// Prometheus's, that also logs an evaluation slower than the group's
// interval: the manager only counts the iterations it then misses
// (prometheus_rule_group_iterations_missed_total).
func (r *Ruler) evalIteration(id string) rules.GroupEvalIterationFunc {
	return func(ctx context.Context, g *rules.Group, evalTimestamp time.Time) {
		rules.DefaultEvalIterationFunc(ctx, g, evalTimestamp)
		if took := g.GetEvaluationTime(); took > g.Interval() {
			r.logger.Warn("rule group evaluation took longer than its interval: iterations are missed", "tenant", id, "group", g.Name(), "file", g.File(), "took", took, "interval", g.Interval())
		}
	}
}

// queryTimeout is how long one of the tenant's rule queries may take: its
// query_timeout, or QueryTimeout. The engine's own timeout is unbounded
// (querier.NewEngine), and a rule's query must not hang its group.
func (r *Ruler) queryTimeout(id string) time.Duration {
	if lim := r.limits.For(id); lim.QueryTimeout > 0 {
		return lim.QueryTimeout
	}
	return r.cfg.QueryTimeout
}

// boundedQuery bounds each of the tenant's rule queries by queryTimeout.
func (r *Ruler) boundedQuery(id string, query rules.QueryFunc) rules.QueryFunc {
	return func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		if timeout := r.queryTimeout(id); timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return query(ctx, q, ts)
	}
}

// boundedQueryable is the queryable the rule manager restores `for` state
// with (ALERTS_FOR_STATE), its selects bounded by queryTimeout as rule
// queries are: the manager gives them its own context, which has none.
type boundedQueryable struct {
	storage.Queryable
	timeout func() time.Duration
}

func (b boundedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := b.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &boundedQuerier{Querier: q, timeout: b.timeout()}, nil
}

type boundedQuerier struct {
	storage.Querier
	timeout time.Duration
	cancels []context.CancelFunc
}

// Select bounds the select and what its series set reads, until Close.
func (q *boundedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.timeout)
		q.cancels = append(q.cancels, cancel)
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

func (q *boundedQuerier) Close() error {
	for _, cancel := range q.cancels {
		cancel()
	}
	return q.Querier.Close()
}

// configureNotifier points the tenant's notifier at its Alertmanagers:
// the tenant's ruler_alertmanager_url, or -ruler.alertmanager-url.
func (r *Ruler) configureNotifier(id string, t *tenantRules, lim *limits.Limits) {
	raw := r.cfg.AlertmanagerURL
	if lim.RulerAlertmanagerURL != "" {
		raw = lim.RulerAlertmanagerURL
	}
	if raw == t.amURLs {
		return
	}
	urls, err := parseURLs(raw)
	if err != nil {
		r.configErrors.WithLabelValues(id).Inc()
		r.logger.Error("tenant's ruler_alertmanager_url refused, alerts keep going where they went", "tenant", id, "err", err)
		return
	}
	cfg := config.Config{}
	targets := map[string][]*targetgroup.Group{}
	for k, u := range urls {
		am := config.DefaultAlertmanagerConfig
		am.Scheme = u.Scheme
		am.PathPrefix = u.Path
		am.Timeout = model.Duration(r.cfg.NotificationTimeout)
		cfg.AlertingConfig.AlertmanagerConfigs = append(cfg.AlertingConfig.AlertmanagerConfigs, &am)
		// Keys as config.AlertmanagerConfigs.ToMap names them.
		targets[fmt.Sprintf("config-%d", k)] = []*targetgroup.Group{{
			Source:  u.String(),
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		}}
	}
	if err := t.notifier.ApplyConfig(&cfg); err != nil {
		r.configErrors.WithLabelValues(id).Inc()
		r.logger.Error("configuring the tenant's Alertmanagers", "tenant", id, "err", err)
		return
	}
	// The notifier takes the latest targets; one pending update is
	// replaced by this one.
	select {
	case <-t.targets:
	default:
	}
	t.targets <- targets
	t.amURLs = raw
}

// RulesFor returns the tenant's rule groups and alerting rules on this
// ruler, for the rules and alerts APIs, as of the last sync.
func (r *Ruler) RulesFor(tenantID string) Retriever {
	r.mu.Lock()
	t := r.tenants[tenantID]
	r.mu.Unlock()
	if t == nil {
		return nil
	}
	if v := t.view.Load(); v != nil {
		return *v
	}
	return nil
}

// Retriever is a tenant's groups' managers, seen as one: the rules and
// alerts APIs' view.
type Retriever []*rules.Manager

// RuleGroups returns the groups sorted by file and name, as a Prometheus
// rule manager lists them.
func (rs Retriever) RuleGroups() []*rules.Group {
	var out []*rules.Group
	for _, m := range rs {
		out = append(out, m.RuleGroups()...)
	}
	slices.SortFunc(out, func(a, b *rules.Group) int {
		if c := strings.Compare(a.File(), b.File()); c != 0 {
			return c
		}
		return strings.Compare(a.Name(), b.Name())
	})
	return out
}

// AlertingRules returns the alerting rules of every group.
func (rs Retriever) AlertingRules() []*rules.AlertingRule {
	var out []*rules.AlertingRule
	for _, g := range rs.RuleGroups() {
		for _, rule := range g.Rules() {
			if a, ok := rule.(*rules.AlertingRule); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// debugOnly logs a rule manager's Info records at Debug: it announces
// every start and stop, and a ruler starts and stops one per group as
// groups move.
type debugOnly struct{ slog.Handler }

func (d debugOnly) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelInfo {
		rec.Level = slog.LevelDebug
	}
	if !d.Handler.Enabled(ctx, rec.Level) {
		return nil
	}
	return d.Handler.Handle(ctx, rec)
}

func (d debugOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return d.Handler.Enabled(ctx, l) || l == slog.LevelInfo
}

func (d debugOnly) WithAttrs(a []slog.Attr) slog.Handler { return debugOnly{d.Handler.WithAttrs(a)} }
func (d debugOnly) WithGroup(n string) slog.Handler      { return debugOnly{d.Handler.WithGroup(n)} }
