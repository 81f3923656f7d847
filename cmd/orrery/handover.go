package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/orrery/orrery/ingester"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// handover is the leaving half of an ingester's lifecycle: on stop it
// marks the ingester LEAVING, waits until distributors stop pushing to it,
// and hands its series to their new owners, before the ring component
// marks it LEFT.
type handover struct {
	ing     *ingester.Ingester
	member  *ring.Member
	clients ingester.Clients
	self    string
	logger  *slog.Logger
}

// quietPeriod without pushes means every distributor has learned that this
// ingester is LEAVING; maxWait bounds the wait if one never does.
const (
	quietPeriod = 2 * time.Second
	maxWait     = 30 * time.Second
)

func (h *handover) Start(context.Context) error { return nil }

func (h *handover) Stop(ctx context.Context) error {
	if !h.othersActive() {
		h.logger.Info("no other ingester to hand over to: series stay in the local store")
		return nil
	}
	if err := h.member.SetState(ringpb.State_LEAVING); err != nil {
		return err
	}
	deadline := time.Now().Add(maxWait)
	for time.Since(h.ing.LastPush()) < quietPeriod && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return h.ing.Handover(ctx, h.self, h.member.Ring(), h.clients)
}

func (h *handover) othersActive() bool {
	for _, inst := range h.member.Ring().Instances() {
		if inst.GetOwnsTokens() && inst.GetAddr() != h.self && inst.GetState() == ringpb.State_ACTIVE {
			return true
		}
	}
	return false
}
