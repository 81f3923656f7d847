package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orrery/orrery/ingester"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// handover is the leaving half of an ingester's lifecycle: on stop it
// marks the ingester LEAVING, waits until distributors stop pushing to it,
// and hands its series to their owners, before the ring component marks it
// LEFT. A failed handover is retried with backoff until the shutdown
// deadline; past it the ingester exits without leaving the ring (its entry
// stays LEAVING with its tokens, unhealthy once its heartbeat stops), so
// queriers know data may be missing instead of silently not asking for
// it, and a restart on the same data dir brings the series back.
//
// For a restart (onShutdown false, and no shutdown requested) it stops
// after the wait instead: the series stay in the WAL and store, and the
// ring keeps the entry LEAVING with its tokens, so the restarted ingester
// takes them back without moving any data.
type handover struct {
	ing        *ingester.Ingester
	member     *ring.Member
	clients    ingester.Clients
	self       string
	onShutdown bool
	requested  atomic.Bool
	logger     *slog.Logger

	failures prometheus.Counter
	failing  prometheus.Gauge
}

func newHandover(ing *ingester.Ingester, member *ring.Member, clients ingester.Clients, self string, onShutdown bool, reg prometheus.Registerer, logger *slog.Logger) *handover {
	f := promauto.With(reg)
	return &handover{
		ing: ing, member: member, clients: clients, self: self, onShutdown: onShutdown, logger: logger,
		failures: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingester_handover_failures_total",
			Help: "Failed handover attempts of this leaving ingester; each is retried until the shutdown deadline."}),
		failing: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_ingester_handover_failing",
			Help: "1 while this leaving ingester's last handover attempt failed: it stays in the ring, LEAVING, holding series no other ingester has."}),
	}
}

// request makes the coming stop a leave with handover, whatever
// onShutdown says: POST /ingester/shutdown.
func (h *handover) request() { h.requested.Store(true) }

// quietPeriod without pushes means every distributor has learned that this
// ingester is LEAVING; maxWait bounds the wait if one never does.
// Failed attempts are retried after retryMin, doubling up to retryMax.
const (
	quietPeriod = 2 * time.Second
	maxWait     = 30 * time.Second
	retryMin    = time.Second
	retryMax    = 30 * time.Second
)

func (h *handover) Start(context.Context) error { return nil }

func (h *handover) Stop(ctx context.Context) error {
	if !h.onShutdown && !h.requested.Load() {
		h.member.KeepEntryOnStop()
		if err := h.member.SetState(ringpb.State_LEAVING); err != nil {
			return err
		}
		h.waitQuiet(ctx)
		h.logger.Info("stopping for a restart: series stay on local disk, tokens stay in the ring (-ingester.handover-on-shutdown=false)")
		return ctx.Err()
	}
	if !h.othersInRing() {
		h.member.KeepEntryOnStop()
		h.logger.Info("no other ingester in the ring to hand over to: series stay in the local store, and the ring keeps this ingester's entry until it returns")
		return nil
	}
	if err := h.member.SetState(ringpb.State_LEAVING); err != nil {
		return err
	}
	h.waitQuiet(ctx)
	wait := retryMin
	for attempt := 1; ; attempt++ {
		err := h.ing.Handover(ctx, h.self, h.member.Ring(), h.clients)
		if err == nil {
			h.failing.Set(0)
			h.member.LeaveOnStop()
			return nil
		}
		h.failures.Inc()
		h.failing.Set(1)
		deadline, _ := ctx.Deadline()
		h.logger.Error("HANDOVER FAILED: this ingester stays in the ring, LEAVING with its tokens, and serves reads of its series; retrying",
			"attempt", attempt, "retry_in", wait, "shutdown_deadline", deadline, "err", err)
		select {
		case <-ctx.Done():
			h.member.KeepEntryOnStop()
			h.logger.Error("HANDOVER FAILED until the shutdown deadline (-ingester.shutdown-timeout): exiting WITHOUT leaving the ring. "+
				"Some series are only on this ingester's disk: start it again on the same data dir (it rejoins with them), then retry with POST /ingester/shutdown",
				"attempts", attempt, "err", err)
			return fmt.Errorf("handover failed after %d attempts, the ring keeps this ingester's entry: %w", attempt, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// waitQuiet waits until no push arrived for quietPeriod (every distributor
// has learned the ingester is LEAVING), at most maxWait or until ctx ends.
func (h *handover) waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(maxWait)
	for time.Since(h.ing.LastPush()) < quietPeriod && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// othersInRing reports whether another ingester holds tokens: one that
// could take the series now or, once ACTIVE and healthy, on a retry.
func (h *handover) othersInRing() bool {
	for _, inst := range h.member.Ring().Instances() {
		if inst.GetOwnsTokens() && len(inst.GetTokens()) > 0 && inst.GetAddr() != h.self && inst.GetState() != ringpb.State_LEFT {
			return true
		}
	}
	return false
}
