package limits

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v3"
)

// Limits are one tenant's limits. Zero means unlimited for every field.
// The YAML names are those of the overrides file.
type Limits struct {
	// IngestionRate is samples per second a tenant may write across the
	// cluster, with bursts of IngestionBurstSize; each distributor
	// enforces its share (see the distributor package).
	IngestionRate      float64 `yaml:"ingestion_rate"`
	IngestionBurstSize int     `yaml:"ingestion_burst_size"`

	// MaxGlobalSeriesPerUser and MaxGlobalSeriesPerMetric bound a tenant's
	// in-memory series across the cluster (before replication); each
	// ingester enforces its share.
	MaxGlobalSeriesPerUser   int `yaml:"max_global_series_per_user"`
	MaxGlobalSeriesPerMetric int `yaml:"max_global_series_per_metric"`
	// MaxGlobalExemplarsPerUser is how many exemplars a tenant keeps
	// across the cluster (before replication), oldest dropped first; each
	// ingester keeps its share. 0 turns exemplar storage off, as in Mimir.
	MaxGlobalExemplarsPerUser int `yaml:"max_global_exemplars_per_user"`

	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`
	// NameValidationScheme is "legacy" ([a-zA-Z_:][a-zA-Z0-9_:]*, what
	// Cortex and Mimir accept by default) or "utf8" (any valid UTF-8, as
	// Prometheus 3 accepts, queried with PromQL's quoted names:
	// {"http.server.duration"}).
	NameValidationScheme string `yaml:"name_validation_scheme"`

	// MaxNativeHistogramBuckets bounds the buckets of one native histogram
	// sample (0: unlimited). One with more has its resolution halved until
	// it fits, as Prometheus's scrape bucket limit does, when
	// ReduceNativeHistogramOverMaxBuckets is set, and is refused otherwise
	// or when it cannot fit (custom buckets, or the lowest schema).
	MaxNativeHistogramBuckets           int  `yaml:"max_native_histogram_buckets"`
	ReduceNativeHistogramOverMaxBuckets bool `yaml:"reduce_native_histogram_over_max_buckets"`

	// OutOfOrderTimeWindow is how far behind the newest sample an ingester
	// holds of the tenant a sample older than its series' newest may be and
	// still be stored, as Prometheus's and Mimir's out_of_order_time_window
	// (0: such samples are refused).
	OutOfOrderTimeWindow time.Duration `yaml:"out_of_order_time_window"`

	// CreationGracePeriod rejects samples further than this in the future.
	CreationGracePeriod time.Duration `yaml:"creation_grace_period"`
	// PastGracePeriod rejects samples older than this.
	PastGracePeriod time.Duration `yaml:"past_grace_period"`

	// AcceptHASamples de-duplicates HA pairs: of the series carrying both
	// HAClusterLabel and HAReplicaLabel, only the elected replica's are
	// kept, without the replica label.
	AcceptHASamples bool   `yaml:"accept_ha_samples"`
	HAClusterLabel  string `yaml:"ha_cluster_label"`
	HAReplicaLabel  string `yaml:"ha_replica_label"`
	// HAMaxClusters bounds the HA clusters a tenant may have tracked.
	HAMaxClusters int `yaml:"ha_max_clusters"`

	// MaxFetchedSeriesPerQuery and MaxFetchedSamplesPerQuery bound what
	// one query may read from the ingesters and the store.
	MaxFetchedSeriesPerQuery  int `yaml:"max_fetched_series_per_query"`
	MaxFetchedSamplesPerQuery int `yaml:"max_fetched_samples_per_query"`
	// MaxQueryLength bounds end minus start of a range query (and of the
	// series, labels and label values calls).
	MaxQueryLength time.Duration `yaml:"max_query_length"`
	// MaxQueryLookback is how far back from now a query may read; older
	// parts of a query's range are not read.
	MaxQueryLookback time.Duration `yaml:"max_query_lookback"`
	// QueryTimeout bounds one query's evaluation; 0 keeps the querier's
	// -querier.timeout.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// ResultsCacheTTL is how long the query frontend keeps a tenant's
	// cached query results; 0 disables the results cache for the tenant.
	ResultsCacheTTL time.Duration `yaml:"results_cache_ttl"`

	// RulerMaxRuleGroupsPerTenant bounds a tenant's rule groups; the
	// ruler loads none of a tenant's groups past it. 0: unlimited.
	RulerMaxRuleGroupsPerTenant int `yaml:"ruler_max_rule_groups_per_tenant"`
	// RulerMaxRulesPerRuleGroup bounds the rules of one group; a group
	// over it is refused. 0: unlimited.
	RulerMaxRulesPerRuleGroup int `yaml:"ruler_max_rules_per_rule_group"`
	// RulerAlertmanagerURL, when set, is where the tenant's alerts go
	// instead of -ruler.alertmanager-url (comma-separated URLs).
	RulerAlertmanagerURL string `yaml:"ruler_alertmanager_url"`

	// RetentionPeriod is how long the ingesters' stores keep the tenant's
	// chunks; 0 keeps them forever.
	RetentionPeriod time.Duration `yaml:"retention_period"`

	// OTLP is how the tenant's OTLP metrics become Prometheus series:
	// Prometheus's own `otlp:` configuration block (translation_strategy,
	// promote_resource_attributes, keep_identifying_resource_attributes,
	// ...), with Prometheus's defaults; no strategy means all defaults.
	OTLP config.OTLPConfig `yaml:"otlp"`
}

// RegisterFlags registers the defaults every tenant gets unless the
// overrides file says otherwise. Label and time limits follow Mimir's
// defaults; the ingestion rate is unlimited by default, since a single
// team's Prometheus easily sends more than Mimir's 10k samples/s.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&l.IngestionRate, "distributor.ingestion-rate-limit", 0, "Per-tenant samples per second through one distributor; 0 is unlimited (set it, or per tenant in the overrides file, when hosting many tenants).")
	fs.IntVar(&l.IngestionBurstSize, "distributor.ingestion-burst-size", 200000, "Per-tenant burst of samples above the rate.")
	fs.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Most labels a series may have; 0 is unlimited.")
	fs.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Longest label name, in bytes; 0 is unlimited.")
	fs.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Longest label value, in bytes; 0 is unlimited.")
	fs.StringVar(&l.NameValidationScheme, "validation.name-validation-scheme", "legacy", "Which metric and label names are valid: legacy or utf8 (per tenant: name_validation_scheme).")
	fs.IntVar(&l.MaxNativeHistogramBuckets, "validation.max-native-histogram-buckets", 0, "Most buckets one native histogram sample may have; 0 is unlimited (per tenant: max_native_histogram_buckets).")
	fs.BoolVar(&l.ReduceNativeHistogramOverMaxBuckets, "validation.reduce-native-histogram-over-max-buckets", true, "Halve the resolution of a native histogram with too many buckets until it fits, rather than refuse it (per tenant: reduce_native_histogram_over_max_buckets).")
	fs.DurationVar(&l.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", 0, "Store samples older than their series' newest if within this of the newest sample of the tenant; 0 refuses them (per tenant: out_of_order_time_window).")
	fs.DurationVar(&l.CreationGracePeriod, "validation.create-grace-period", 10*time.Minute, "Reject samples further than this in the future; 0 is unlimited.")
	fs.DurationVar(&l.PastGracePeriod, "validation.past-grace-period", 0, "Reject samples older than this; 0 is unlimited.")
	fs.IntVar(&l.MaxGlobalSeriesPerUser, "ingester.max-global-series-per-user", 0, "Most in-memory series a tenant may have across the cluster, before replication; 0 is unlimited.")
	fs.IntVar(&l.MaxGlobalExemplarsPerUser, "ingester.max-global-exemplars-per-user", 0, "Exemplars a tenant keeps across the cluster, before replication, oldest dropped first; 0 stores none (per tenant: max_global_exemplars_per_user).")
	fs.IntVar(&l.MaxGlobalSeriesPerMetric, "ingester.max-global-series-per-metric", 0, "Most in-memory series one metric name of a tenant may have across the cluster, before replication; 0 is unlimited.")
	fs.BoolVar(&l.AcceptHASamples, "distributor.ha-tracker.enable-for-all-users", false, "De-duplicate HA Prometheus pairs for every tenant (per tenant: accept_ha_samples).")
	fs.StringVar(&l.HAClusterLabel, "distributor.ha-tracker.cluster", "cluster", "Label naming the HA cluster a series comes from.")
	fs.StringVar(&l.HAReplicaLabel, "distributor.ha-tracker.replica", "__replica__", "Label naming the replica within an HA cluster; dropped from accepted series.")
	fs.IntVar(&l.HAMaxClusters, "distributor.ha-tracker.max-clusters", 100, "Most HA clusters tracked per tenant; 0 is unlimited.")
	fs.IntVar(&l.MaxFetchedSeriesPerQuery, "querier.max-fetched-series-per-query", 0, "Most series one query may fetch; 0 is unlimited.")
	fs.IntVar(&l.MaxFetchedSamplesPerQuery, "querier.max-fetched-samples-per-query", 0, "Most samples one query may fetch; 0 is unlimited.")
	fs.DurationVar(&l.MaxQueryLength, "querier.max-query-length", 0, "Longest time range one query may cover; 0 is unlimited.")
	fs.DurationVar(&l.MaxQueryLookback, "querier.max-query-lookback", 0, "How far back from now queries may read; 0 is unlimited.")
	fs.DurationVar(&l.QueryTimeout, "querier.tenant-query-timeout", 0, "Per-tenant query timeout; 0 uses -querier.timeout.")
	fs.DurationVar(&l.ResultsCacheTTL, "frontend.results-cache-ttl", 7*24*time.Hour, "How long the query frontend caches a tenant's query results; 0 disables the cache for the tenant.")
	fs.IntVar(&l.RulerMaxRuleGroupsPerTenant, "ruler.max-rule-groups-per-tenant", 70, "Most rule groups a tenant may have; 0 is unlimited.")
	fs.IntVar(&l.RulerMaxRulesPerRuleGroup, "ruler.max-rules-per-rule-group", 20, "Most rules one rule group may have; 0 is unlimited.")
	fs.DurationVar(&l.RetentionPeriod, "ingester.retention", 15*24*time.Hour, "Delete stored chunks older than this; 0 keeps them forever (per tenant: retention_period).")
	l.OTLP = config.DefaultOTLPConfig
}

// Validate reports a negative limit.
func (l *Limits) Validate() error {
	if l.IngestionRate < 0 || l.IngestionBurstSize < 0 || l.MaxLabelNamesPerSeries < 0 || l.MaxLabelNameLength < 0 ||
		l.MaxLabelValueLength < 0 || l.CreationGracePeriod < 0 || l.PastGracePeriod < 0 ||
		l.MaxGlobalSeriesPerUser < 0 || l.MaxGlobalSeriesPerMetric < 0 || l.HAMaxClusters < 0 ||
		l.MaxFetchedSeriesPerQuery < 0 || l.MaxFetchedSamplesPerQuery < 0 || l.MaxQueryLength < 0 ||
		l.MaxQueryLookback < 0 || l.QueryTimeout < 0 || l.ResultsCacheTTL < 0 ||
		l.RulerMaxRuleGroupsPerTenant < 0 || l.RulerMaxRulesPerRuleGroup < 0 || l.RetentionPeriod < 0 ||
		l.MaxNativeHistogramBuckets < 0 || l.MaxGlobalExemplarsPerUser < 0 || l.OutOfOrderTimeWindow < 0 {
		return errors.New("limits must not be negative")
	}
	if l.AcceptHASamples && (l.HAClusterLabel == "" || l.HAReplicaLabel == "" || l.HAClusterLabel == l.HAReplicaLabel) {
		return errors.New("accept_ha_samples needs distinct, non-empty ha_cluster_label and ha_replica_label")
	}
	switch l.NameValidationScheme {
	case "", "legacy", "utf8":
	default:
		return fmt.Errorf("name_validation_scheme (-validation.name-validation-scheme): unknown scheme %q (want legacy or utf8)", l.NameValidationScheme)
	}
	switch l.OTLP.TranslationStrategy {
	case "", otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
	default:
		return fmt.Errorf("otlp: unknown translation_strategy %q", l.OTLP.TranslationStrategy)
	}
	return nil
}

// NameScheme is the tenant's name validation; legacy unless set to utf8.
func (l *Limits) NameScheme() model.ValidationScheme {
	if l.NameValidationScheme == "utf8" {
		return model.UTF8Validation
	}
	return model.LegacyValidation
}

// Config is where overrides come from.
type Config struct {
	OverridesFile  string        `yaml:"overrides_file"`
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// RegisterFlags registers the overrides flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.OverridesFile, "runtime-config.file", "", "YAML file of per-tenant limit overrides, reloaded while running.")
	fs.DurationVar(&c.ReloadInterval, "runtime-config.reload-period", 10*time.Second, "How often the overrides file is re-read.")
}

// Overrides hands out each tenant's limits: the defaults, with the fields
// the overrides file sets for that tenant. Safe for concurrent use.
type Overrides struct {
	cfg      Config
	defaults Limits
	logger   *slog.Logger

	mu      sync.RWMutex
	tenants map[string]*Limits
	loaded  []byte

	reloads *prometheus.CounterVec
	stop    chan struct{}
	done    chan struct{}
}

// NewOverrides reads the overrides file, if any; a bad file is an error.
func NewOverrides(cfg Config, defaults Limits, reg prometheus.Registerer, logger *slog.Logger) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, err
	}
	o := &Overrides{
		cfg: cfg, defaults: defaults, logger: logger, tenants: map[string]*Limits{},
		reloads: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_limits_overrides_reloads_total",
			Help: "Reloads of the overrides file, by result."}, []string{"result"}),
	}
	if err := o.reload(); err != nil {
		return nil, err
	}
	return o, nil
}

// For returns tenant's limits. The caller must not modify them.
func (o *Overrides) For(tenant string) *Limits {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if l, ok := o.tenants[tenant]; ok {
		return l
	}
	return &o.defaults
}

// overridesFile is the file's shape: per tenant, only the fields to change.
type overridesFile struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

func (o *Overrides) reload() error {
	if o.cfg.OverridesFile == "" {
		return nil
	}
	data, err := os.ReadFile(o.cfg.OverridesFile)
	if err != nil {
		return fmt.Errorf("limits: read overrides: %w", err)
	}
	o.mu.RLock()
	same := bytes.Equal(data, o.loaded)
	o.mu.RUnlock()
	if same {
		return nil
	}
	var f overridesFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("limits: parse overrides %s: %w", o.cfg.OverridesFile, err)
	}
	tenants := make(map[string]*Limits, len(f.Overrides))
	for tenant, node := range f.Overrides {
		l := o.defaults
		if err := decodeStrict(&node, &l); err != nil {
			return fmt.Errorf("limits: overrides of tenant %q: %w", tenant, err)
		}
		if err := l.Validate(); err != nil {
			return fmt.Errorf("limits: overrides of tenant %q: %w", tenant, err)
		}
		tenants[tenant] = &l
	}
	o.mu.Lock()
	o.tenants, o.loaded = tenants, data
	o.mu.Unlock()
	o.logger.Info("overrides loaded", "file", o.cfg.OverridesFile, "tenants", len(tenants))
	return nil
}

// decodeStrict decodes node over l, refusing keys Limits does not have:
// a misspelt limit must fail the reload, not silently keep the default.
// yaml.Node.Decode cannot refuse unknown keys, so the node takes a round
// trip through a strict decoder.
func decodeStrict(node *yaml.Node, l *Limits) error {
	raw, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	return dec.Decode(l)
}

// Start re-reads the overrides file every ReloadInterval. A file that
// fails to load keeps the previous limits and is counted.
func (o *Overrides) Start(context.Context) error {
	if o.cfg.OverridesFile == "" || o.cfg.ReloadInterval <= 0 {
		return nil
	}
	o.stop, o.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(o.done)
		t := time.NewTicker(o.cfg.ReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-o.stop:
				return
			case <-t.C:
				if err := o.reload(); err != nil {
					o.reloads.WithLabelValues("failure").Inc()
					o.logger.Error("overrides not reloaded; keeping the previous limits", "err", err)
					continue
				}
				o.reloads.WithLabelValues("success").Inc()
			}
		}
	}()
	return nil
}

// Stop ends the reload loop.
func (o *Overrides) Stop(context.Context) error {
	if o.stop != nil {
		close(o.stop)
		<-o.done
	}
	return nil
}
