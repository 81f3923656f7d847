package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/orrery/orrery/ingester"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// handover is the leaving half of an ingester's lifecycle: on stop it
// marks the ingester LEAVING, waits until distributors stop pushing to it,
// and hands its series to their new owners, before the ring component
// marks it LEFT. For a restart (onShutdown false, and no shutdown
// requested) it stops after the wait instead: the series stay in the WAL
// and store, and the ring keeps the entry LEAVING with its tokens, so the
// restarted ingester takes them back without moving any data.
type handover struct {
	ing        *ingester.Ingester
	member     *ring.Member
	clients    ingester.Clients
	self       string
	onShutdown bool
	requested  atomic.Bool
	logger     *slog.Logger
}

// request makes the coming stop a leave with handover, whatever
// onShutdown says: POST /ingester/shutdown.
func (h *handover) request() { h.requested.Store(true) }

// quietPeriod without pushes means every distributor has learned that this
// ingester is LEAVING; maxWait bounds the wait if one never does.
const (
	quietPeriod = 2 * time.Second
	maxWait     = 30 * time.Second
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
	if !h.othersActive() {
		h.logger.Info("no other ingester to hand over to: series stay in the local store")
		return nil
	}
	if err := h.member.SetState(ringpb.State_LEAVING); err != nil {
		return err
	}
	h.waitQuiet(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	return h.ing.Handover(ctx, h.self, h.member.Ring(), h.clients)
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

func (h *handover) othersActive() bool {
	for _, inst := range h.member.Ring().Instances() {
		if inst.GetOwnsTokens() && inst.GetAddr() != h.self && inst.GetState() == ringpb.State_ACTIVE {
			return true
		}
	}
	return false
}
