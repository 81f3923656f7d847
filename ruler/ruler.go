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

// tenantRules is one tenant's rule manager and notifier.
type tenantRules struct {
	manager  *rules.Manager
	loader   *loader
	notifier *notifier.Manager
	targets  chan map[string][]*targetgroup.Group
	amURLs   string // the Alertmanager URLs the notifier was configured with
}

// New returns a ruler; it evaluates nothing until Start. self is this
// process's ring id; ringChanged, when not nil, wakes it when the ring
// changes, so owned groups move without waiting for the poll.
func New(cfg Config, self string, engine promql.QueryEngine, queryable storage.Queryable, pusher Pusher, r Ring, ringChanged <-chan struct{}, l Limits, reg prometheus.Registerer, logger *slog.Logger) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var external *url.URL
	if cfg.ExternalURL != "" {
		external, _ = url.Parse(cfg.ExternalURL)
	}
	f := promauto.With(reg)
	return &Ruler{
		cfg: cfg, self: self, engine: engine, queryable: queryable, pusher: pusher, ring: r, limits: l,
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
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.changed:
		}
		r.sync()
	}
}

// Stop stops evaluating, then the notifiers, after they sent what they
// hold (Prometheus's DrainOnShutdown).
func (r *Ruler) Stop(context.Context) error {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	r.stopped = true
	tenants := r.tenants
	r.mu.Unlock()
	for _, t := range tenants {
		t.manager.Stop()
	}
	for _, t := range tenants {
		t.notifier.Stop()
	}
	return nil
}

// sync re-reads the tenants' rule files and applies what this ruler owns.
func (r *Ruler) sync() {
	r.syncs.Inc()
	rulers := r.ring.HealthyIDs(Component)
	files, err := r.listFiles()
	if err != nil {
		r.logger.Error("listing rule files", "path", r.cfg.RulePath, "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	// A tenant whose directory went away keeps its manager, with no
	// groups, so that its groups stop and its state is dropped.
	for id := range r.tenants {
		if _, ok := files[id]; !ok {
			files[id] = nil
		}
	}
	for id, fs := range files {
		t := r.tenants[id]
		if t == nil {
			if len(fs) == 0 {
				continue
			}
			t = r.newTenant(id)
			r.tenants[id] = t
		}
		lim := r.limits.For(id)
		r.configureNotifier(id, t, lim)
		t.loader.startSync(func(namespace, group string) bool {
			return owner(rulers, id, namespace, group) == r.self
		}, lim.RulerMaxRuleGroupsPerTenant, lim.RulerMaxRulesPerRuleGroup)
		keep := map[string]bool{}
		for _, f := range fs {
			keep[f] = true
		}
		t.loader.forget(keep)
		if err := t.manager.Update(r.cfg.EvaluationInterval, fs, labels.EmptyLabels(), r.externalURL(), nil); err != nil {
			// The loader never fails; a failure here is the manager's.
			r.logger.Error("updating rule groups", "tenant", id, "err", err)
		}
		r.owned.WithLabelValues(id).Set(float64(len(t.manager.RuleGroups())))
	}
}

// listFiles returns each tenant's rule files, sorted, by tenant id, as
// paths relative to the rule path.
func (r *Ruler) listFiles() (map[string][]string, error) {
	out := map[string][]string{}
	dirs, err := os.ReadDir(r.cfg.RulePath)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
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
			return nil, err
		}
		var fs []string
		for _, e := range entries {
			name := e.Name()
			// Kubernetes mounts a ConfigMap's keys as symlinks beside
			// hidden ..data directories: follow the links, skip the rest.
			if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			if info, err := os.Stat(filepath.Join(r.cfg.RulePath, id, name)); err != nil || info.IsDir() {
				continue
			}
			// Relative to the rule path: a group's file is part of its key,
			// which fixes its evaluation times (rules.Group.EvalTimestamp),
			// so every ruler must name it alike wherever its files are
			// mounted; and a tenant sees no server path in the API.
			fs = append(fs, id+"/"+name)
		}
		slices.Sort(fs)
		out[id] = fs
	}
	return out, nil
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
	t := &tenantRules{notifier: n, targets: make(chan map[string][]*targetgroup.Group, 1)}
	go n.Run(t.targets)
	ctx := tenant.WithID(context.Background(), id)
	t.loader = newLoader(r.cfg.RulePath, id, r.parser, logger, func(err error) {
		r.configErrors.WithLabelValues(id).Inc()
		logger.Error("rules refused", "err", err)
	})
	t.manager = rules.NewManager(&rules.ManagerOptions{
		ExternalURL:  r.external,
		QueryFunc:    r.boundedQuery(id, rules.EngineQueryFunc(r.engine, r.queryable)),
		NotifyFunc:   rules.SendAlerts(n, r.externalURL()),
		Context:      ctx,
		AppendableV2: appendable{pusher: r.pusher, tenant: id},
		Queryable:    r.queryable,
		Logger:       logger,
		Metrics:      r.metrics,
		// Groups that move here from another ruler restore their `for`
		// state from ALERTS_FOR_STATE, as after a restart.
		RestoreNewRuleGroups: true,
		OutageTolerance:      r.cfg.OutageTolerance,
		ForGracePeriod:       r.cfg.ForGracePeriod,
		ResendDelay:          r.cfg.ResendDelay,
		GroupLoader:          t.loader,
		Parser:               r.parser,
		DefaultRuleQueryOffset: func() time.Duration {
			return 0
		},
	})
	go t.manager.Run()
	return t
}

// boundedQuery bounds each of the tenant's rule queries by its
// query_timeout, or QueryTimeout: the engine's own timeout is unbounded
// (querier.NewEngine), and a rule's query must not hang its group.
func (r *Ruler) boundedQuery(id string, query rules.QueryFunc) rules.QueryFunc {
	return func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		timeout := r.cfg.QueryTimeout
		if lim := r.limits.For(id); lim.QueryTimeout > 0 {
			timeout = lim.QueryTimeout
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return query(ctx, q, ts)
	}
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
// ruler, for the rules and alerts APIs; nil when it has none.
func (r *Ruler) RulesFor(tenantID string) *rules.Manager {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tenants[tenantID]; t != nil {
		return t.manager
	}
	return nil
}
