package ingester

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery/orrery/proto/ringpb"
)

// Membership is what leaving needs of this ingester's own ring entry: to
// set its state, and to say whether stopping removes it (LEFT, tokens
// dropped) or keeps it with its tokens.
type Membership interface {
	SetState(ringpb.State) error
	KeepEntryOnStop()
	LeaveOnStop()
}

// Leaver is the leaving half of an ingester's lifecycle, stopped before the
// ingester and its ring entry: on stop it marks the ingester LEAVING, waits
// until distributors stop pushing to it, and hands its series to their
// owners, before the ring entry is marked LEFT. A failed handover is
// retried with backoff until the shutdown deadline; past it the ingester
// exits without leaving the ring (its entry stays LEAVING with its tokens,
// unhealthy once its heartbeat stops), so queriers know data may be
// missing instead of silently not asking for it, and a restart on the same
// data dir brings the series back. An ingester that sees no other in the
// ring looks again for a few seconds before it keeps its series as the
// only one: its view may not show a peer that joined just before.
//
// For a restart (onShutdown false, and no leave requested) it stops after
// the wait instead: the series stay in the WAL and store, and the ring
// keeps the entry LEAVING with its tokens, so the restarted ingester takes
// them back without moving any data. testdata/leave scripts every path.
type Leaver struct {
	ing        *Ingester
	member     Membership
	owners     Owners
	clients    Clients
	self       string
	onShutdown bool
	requested  atomic.Bool
	logger     *slog.Logger

	// quietPeriod without pushes means every distributor has learned that
	// this ingester is LEAVING; maxWait bounds the wait if one never does.
	// Failed attempts are retried after retryMin, doubling up to retryMax.
	quietPeriod, maxWait, retryMin, retryMax time.Duration
	// settle is how long a leaver that sees no other ingester keeps
	// looking before it concludes it is alone: a peer that joined moments
	// ago may not be in this ingester's view of the ring yet (gossip
	// takes rounds, and a full exchange comes every push-pull interval,
	// 5s), and concluding alone keeps the series here instead of handing
	// them over.
	settle time.Duration
	// after is time.After; scenario tests count the retries through it.
	after func(time.Duration) <-chan time.Time

	failures prometheus.Counter
	failing  prometheus.Gauge
}

// NewLeaver returns the leaving lifecycle of ing, whose ring entry is
// member and whose address in the ring is self. owners is the ring it
// hands series over by, clients reach the other ingesters. onShutdown
// makes every stop a leave with handover (-ingester.handover-on-shutdown).
func NewLeaver(ing *Ingester, member Membership, owners Owners, clients Clients, self string, onShutdown bool, reg prometheus.Registerer, logger *slog.Logger) *Leaver {
	f := promauto.With(reg)
	return &Leaver{
		ing: ing, member: member, owners: owners, clients: clients, self: self, onShutdown: onShutdown, logger: logger,
		quietPeriod: 2 * time.Second, maxWait: 30 * time.Second, retryMin: time.Second, retryMax: 30 * time.Second, settle: 5 * time.Second,
		after: time.After,
		failures: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_handover_failures_total",
			Help: "Failed handover attempts of this leaving ingester; each is retried until the shutdown deadline."}),
		failing: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_ingester_handover_failing",
			Help: "1 while this leaving ingester's last handover attempt failed: it stays in the ring, LEAVING, holding series no other ingester has."}),
	}
}

// Request makes the coming stop a leave with handover, whatever onShutdown
// says: POST /ingester/shutdown.
func (l *Leaver) Request() { l.requested.Store(true) }

// Start does nothing: leaving happens on Stop.
func (l *Leaver) Start(context.Context) error { return nil }

// Stop leaves (or, for a restart, steps aside); ctx's deadline is the
// shutdown deadline.
func (l *Leaver) Stop(ctx context.Context) error {
	if !l.onShutdown && !l.requested.Load() {
		l.member.KeepEntryOnStop()
		if err := l.member.SetState(ringpb.State_LEAVING); err != nil {
			return err
		}
		l.waitQuiet(ctx)
		l.logger.Info("stopping for a restart: series stay on local disk, tokens stay in the ring (-ingester.handover-on-shutdown=false)")
		return ctx.Err()
	}
	if !l.peerAppears(ctx) {
		l.member.KeepEntryOnStop()
		l.logger.Info("no other ingester in the ring to hand over to: series stay in the local store, and the ring keeps this ingester's entry until it returns")
		return nil
	}
	if err := l.member.SetState(ringpb.State_LEAVING); err != nil {
		return err
	}
	l.waitQuiet(ctx)
	wait := l.retryMin
	for attempt := 1; ; attempt++ {
		err := l.ing.Handover(ctx, l.self, l.owners, l.clients)
		if err == nil {
			l.failing.Set(0)
			l.member.LeaveOnStop()
			return nil
		}
		l.failures.Inc()
		l.failing.Set(1)
		deadline, _ := ctx.Deadline()
		l.logger.Error("HANDOVER FAILED: this ingester stays in the ring, LEAVING with its tokens, and serves reads of its series; retrying",
			"attempt", attempt, "retry_in", wait, "shutdown_deadline", deadline, "err", err)
		select {
		case <-ctx.Done():
			l.member.KeepEntryOnStop()
			l.logger.Error("HANDOVER FAILED until the shutdown deadline (-ingester.shutdown-timeout): exiting WITHOUT leaving the ring. "+
				"Some series are only on this ingester's disk: start it again on the same data dir (it rejoins with them), then retry with POST /ingester/shutdown",
				"attempts", attempt, "err", err)
			return fmt.Errorf("handover failed after %d attempts, the ring keeps this ingester's entry: %w", attempt, err)
		case <-l.after(wait):
		}
		wait = min(2*wait, l.retryMax)
	}
}

// waitQuiet waits until no push arrived for quietPeriod (every distributor
// has learned the ingester is LEAVING), at most maxWait or until ctx ends.
func (l *Leaver) waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(l.maxWait)
	poll := min(200*time.Millisecond, l.quietPeriod/4)
	for time.Since(l.ing.LastPush()) < l.quietPeriod && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

// peerAppears reports whether another ingester is in the ring, looking
// again for up to settle (or until ctx ends) while there is none.
func (l *Leaver) peerAppears(ctx context.Context) bool {
	deadline := time.Now().Add(l.settle)
	for !l.othersInRing() {
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(100*time.Millisecond, l.settle)):
		}
	}
	return true
}

// othersInRing reports whether another ingester holds tokens: one that
// could take the series now or, once ACTIVE and healthy, on a retry.
func (l *Leaver) othersInRing() bool {
	for _, inst := range l.owners.Instances() {
		if inst.GetOwnsTokens() && len(inst.GetTokens()) > 0 && inst.GetAddr() != l.self && inst.GetState() != ringpb.State_LEFT {
			return true
		}
	}
	return false
}
