package querier

import (
	"errors"
	"flag"
	"time"
)

// Config is the querier's configuration.
type Config struct {
	Timeout       time.Duration `yaml:"timeout"`
	MaxConcurrent int           `yaml:"max_concurrent"`
	MaxSamples    int           `yaml:"max_samples"`
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// IngesterTimeout bounds one select on one ingester; a query still ends
	// at Timeout.
	IngesterTimeout time.Duration `yaml:"ingester_timeout"`
	// MinimizeIngesterRequests asks, while the ring is settled, only as
	// many ingesters as a complete answer needs (all but the ring's
	// MaxErrors), rotating which are left out; false asks every one.
	MinimizeIngesterRequests bool `yaml:"minimize_ingester_requests"`
	// HedgeDelay is how long after the first answer a minimized read waits
	// for the other ingesters it asked before asking a spare in the place
	// of each one still out. 0 asks the spares as soon as one answer came.
	HedgeDelay time.Duration `yaml:"minimize_ingester_requests_hedging_delay"`
	// Pushdown evaluates shardable aggregations in the ingesters when a
	// read asks two or more (docs/architecture.md, "Pushdown").
	Pushdown bool `yaml:"pushdown"`
	// PushdownMinRange is the shortest time range a select must read to
	// be pushed down.
	PushdownMinRange time.Duration `yaml:"pushdown_min_range"`
}

// RegisterFlags registers the querier's flags; defaults are Prometheus's.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Maximum time a query may take before being aborted.")
	fs.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Maximum number of queries evaluated at once.")
	fs.IntVar(&c.MaxSamples, "querier.max-samples", 50000000, "Maximum number of samples a single query can load into memory.")
	fs.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant selector looks for a sample.")
	fs.DurationVar(&c.IngesterTimeout, "querier.ingester-timeout", time.Minute, "Timeout of one select on one ingester.")
	fs.BoolVar(&c.MinimizeIngesterRequests, "querier.minimize-ingester-requests", true, "While the ring is settled, ask only as many ingesters as a complete answer needs (all but the replication tolerance), rotating which are left out; a failed or late one is replaced by a spare.")
	fs.BoolVar(&c.Pushdown, "querier.pushdown", true, "Evaluate shardable aggregations (sum, min, max, count, group of one selector) in the ingesters when a read asks two or more, each series by one replica whose chunks its peers' match, and aggregate their partial results.")
	fs.DurationVar(&c.PushdownMinRange, "querier.pushdown-min-range", time.Hour, "With -querier.pushdown, push down only aggregations whose selector reads at least this long a time range (its range and lookback included); shorter ones evaluate in the querier, which is faster than pushdown's two round trips.")
	fs.DurationVar(&c.HedgeDelay, "querier.minimize-ingester-requests-hedging-delay", 500*time.Millisecond, "With -querier.minimize-ingester-requests, how long after the first ingester answered to wait for the others before asking a spare ingester in the place of each one still out.")
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.Timeout <= 0 || c.IngesterTimeout <= 0 || c.LookbackDelta <= 0 {
		return errors.New("querier timeouts and lookback delta must be positive")
	}
	if c.HedgeDelay < 0 {
		return errors.New("querier.minimize-ingester-requests-hedging-delay must not be negative")
	}
	if c.MaxConcurrent < 1 || c.MaxSamples < 1 {
		return errors.New("querier.max-concurrent and querier.max-samples must be positive")
	}
	return nil
}

// TenantFederationConfig enables cross-tenant reads. It is wired in front
// of the read endpoints: with it off, a header naming several tenants is
// an invalid tenant ID, as it always is for writes.
type TenantFederationConfig struct {
	// Enabled lets a read name several tenants, joined by "|"; each series
	// then carries a __tenant_id__ label (docs/tenancy.md).
	Enabled bool `yaml:"enabled"`
}

// RegisterFlags registers the tenant federation flag, named as Mimir's.
func (c *TenantFederationConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "tenant-federation.enabled", false, "Let reads name several tenants in X-Scope-OrgID, joined by | (a|b), each series labelled __tenant_id__; writes always belong to one tenant.")
}
