package ingester

import (
	"errors"
	"fmt"

	"github.com/orrery/orrery/limits"
)

// Limits gives a tenant's limits. The ingester asks on every push, so a
// change to the overrides file applies from the next push on. It must be
// safe for concurrent use; the ingester does not modify what it returns.
type Limits interface {
	For(tenant string) *limits.Limits
}

// RingCount is what the series limits need of the ring to turn a tenant's
// cluster-wide limits into this ingester's share. Safe for concurrent use.
type RingCount interface {
	// HealthyIngesters is how many ingesters take writes now.
	HealthyIngesters() int
	// ReplicationFactor is how many ingesters each series is written to.
	ReplicationFactor() int
}

// Sentinel errors of tenantHead.getOrCreate when a limit refuses to create
// a series. They never reach a client: push counts them and explains the
// first with seriesLimitMessage.
var (
	errPerUserSeriesLimit   = errors.New("per-user series limit reached")
	errPerMetricSeriesLimit = errors.New("per-metric series limit reached")
)

// seriesLimits are this ingester's shares of one tenant's series limits,
// taken once per push. Zero means unlimited. Replay uses the zero value:
// what the WAL holds was acknowledged and must come back whatever the
// limits are now.
type seriesLimits struct {
	perUser, perMetric int
}

// check returns why one more series may not be created in a head holding
// series series, ofMetric of them with the new series' metric name.
func (l seriesLimits) check(series, ofMetric int) error {
	switch {
	case l.perUser > 0 && series >= l.perUser:
		return errPerUserSeriesLimit
	case l.perMetric > 0 && ofMetric >= l.perMetric:
		return errPerMetricSeriesLimit
	}
	return nil
}

// seriesLimitsFor returns tenantID's current limits and this ingester's
// shares of its series limits. The ring is only asked when a series limit
// is set.
func (i *Ingester) seriesLimitsFor(tenantID string) (*limits.Limits, seriesLimits) {
	l := i.limits.For(tenantID)
	if l.MaxGlobalSeriesPerUser == 0 && l.MaxGlobalSeriesPerMetric == 0 {
		return l, seriesLimits{}
	}
	n, rf := i.ring.HealthyIngesters(), i.ring.ReplicationFactor()
	return l, seriesLimits{
		perUser:   localLimit(l.MaxGlobalSeriesPerUser, rf, n),
		perMetric: localLimit(l.MaxGlobalSeriesPerMetric, rf, n),
	}
}

// localLimit is one ingester's share of a cluster-wide series limit when n
// ingesters share the writes and each series has rf replicas: Mimir's
// ceil(global × rf / n), which assumes series spread evenly over the
// ingesters. rf is capped at n, since a series cannot have more replicas
// than there are ingesters; so a lone ingester's share is the whole limit,
// and no share ever exceeds it. n = 0 happens while the ring does not yet
// list this ingester (at start-up) and counts as 1. A global 0 (unlimited)
// stays 0.
func localLimit(global, rf, n int) int {
	if global <= 0 {
		return 0
	}
	n = max(n, 1)
	rf = min(rf, n)
	return (global*rf + n - 1) / n
}

// seriesLimitMessage explains a refusal in the terms the tenant configured:
// the cluster-wide limit, a stable ID and what to raise, as Mimir's
// err-mimir-max-series-per-user does.
func seriesLimitMessage(err error, l *limits.Limits, metric string) string {
	if errors.Is(err, errPerUserSeriesLimit) {
		return fmt.Sprintf("per-user series limit of %d exceeded (err-orrery-max-series-per-user: raise the tenant's max_global_series_per_user or -ingester.max-global-series-per-user)",
			l.MaxGlobalSeriesPerUser)
	}
	return fmt.Sprintf("per-metric series limit of %d exceeded for metric %q (err-orrery-max-series-per-metric: raise the tenant's max_global_series_per_metric or -ingester.max-global-series-per-metric)",
		l.MaxGlobalSeriesPerMetric, metric)
}
