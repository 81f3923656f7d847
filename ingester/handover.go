package ingester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/store"
	"github.com/orrery/orrery/tenant"
)

// Owners is what handover needs of the ring: a series' owners once this
// ingester no longer takes writes, and its owners before.
type Owners interface {
	Get(key uint32) (ring.ReplicationSet, error)
	GetAsIfActive(key uint32, addr string) (ring.ReplicationSet, error)
}

// Clients hands out a client of another ingester by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// transferBatchSeries bounds one TransferChunks message.
const transferBatchSeries = 256

// TransferChunks implements ingesterpb.IngesterServer: it stores the chunks
// a leaving ingester hands over. They go to the store, not to memory, so
// they never meet this ingester's out-of-order checks nor its series
// limits (they were acknowledged once already); where they overlap what it
// holds, queries de-duplicate.
func (i *Ingester) TransferChunks(stream ingesterpb.Ingester_TransferChunksServer) error {
	tenantID, err := tenant.FromContext(stream.Context())
	if err != nil {
		return apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	resp := &ingesterpb.TransferChunksResponse{}
	var b labels.ScratchBuilder
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			i.m.chunksReceived.Add(float64(resp.Chunks))
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		batch := make([]store.SeriesChunks, 0, len(req.Series))
		for _, s := range req.Series {
			sc := store.SeriesChunks{Labels: ingesterpb.ToLabels(&b, s.Labels)}
			for _, c := range s.Chunks {
				sc.Chunks = append(sc.Chunks, store.Chunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: chunkenc.Encoding(c.Encoding), Data: c.Data})
			}
			batch = append(batch, sc)
			resp.Series++
			resp.Chunks += int64(len(s.Chunks))
		}
		if err := i.store.Put(tenantID, batch); err != nil {
			return apierr.ToGRPC(fmt.Errorf("ingester: store transferred chunks: %w", err))
		}
	}
}

// LastPush is when this ingester last appended samples, for a leaving
// ingester to know that distributors have stopped sending.
func (i *Ingester) LastPush() time.Time {
	return time.Unix(0, i.lastPush.Load())
}

// Handover gives every series this ingester holds to the owners the ring
// names for it now that this ingester is LEAVING: it flushes memory to its
// own store, then streams each stored series to those owners. self is this
// ingester's address, never a target. With no other owner (a single
// ingester) there is nobody to hand to: the data stays in the local store
// and is served again on restart. From the start of Handover the ingester
// refuses pushes, so every acknowledged sample is in what it streams.
func (i *Ingester) Handover(ctx context.Context, self string, owners Owners, clients Clients) error {
	i.pushGate.Lock()
	i.handingOver = true
	i.pushGate.Unlock()
	i.flush(true)
	tenants, err := i.store.Tenants()
	if err != nil {
		return fmt.Errorf("ingester: handover: %w", err)
	}
	start, sent := time.Now(), 0
	for _, tenantID := range tenants {
		n, err := i.handoverTenant(tenant.WithID(ctx, tenantID), tenantID, self, owners, clients)
		if err != nil {
			return fmt.Errorf("ingester: handover of tenant %s: %w", tenantID, err)
		}
		sent += n
	}
	i.logger.Info("handover done", "tenants", len(tenants), "series_sent", sent, "duration", time.Since(start))
	return nil
}

// handoverTenant streams one tenant's series, batched per target.
func (i *Ingester) handoverTenant(ctx context.Context, tenantID, self string, owners Owners, clients Clients) (int, error) {
	series, err := i.store.Select(tenantID, math.MinInt64, math.MaxInt64)
	if err != nil {
		return 0, err
	}
	streams := map[string]ingesterpb.Ingester_TransferChunksClient{}
	pending := map[string]*ingesterpb.TransferChunksRequest{}
	sent := 0
	for _, sc := range series {
		key := ring.ShardKey(tenantID, sc.Labels)
		rs, err := owners.Get(key)
		if err != nil {
			return sent, err
		}
		// Replicas that owned the series alongside this ingester were sent
		// the same samples and hold them already: only new owners need it.
		before, err := owners.GetAsIfActive(key, self)
		if err != nil {
			return sent, err
		}
		wire := toWire(sc)
		for _, inst := range rs.Instances {
			if inst.Addr == self || slices.ContainsFunc(before.Instances, func(b *ringpb.Instance) bool { return b.Addr == inst.Addr }) {
				continue
			}
			req := pending[inst.Addr]
			if req == nil {
				req = &ingesterpb.TransferChunksRequest{}
				pending[inst.Addr] = req
			}
			req.Series = append(req.Series, wire)
			if len(req.Series) >= transferBatchSeries {
				if err := sendTransfer(ctx, streams, inst.Addr, req, clients); err != nil {
					return sent, err
				}
				pending[inst.Addr] = nil
			}
			sent++
		}
	}
	for addr, req := range pending {
		if req != nil {
			if err := sendTransfer(ctx, streams, addr, req, clients); err != nil {
				return sent, err
			}
		}
	}
	for addr, s := range streams {
		if _, err := s.CloseAndRecv(); err != nil {
			return sent, fmt.Errorf("transfer to %s: %w", addr, err)
		}
	}
	return sent, nil
}

func sendTransfer(ctx context.Context, streams map[string]ingesterpb.Ingester_TransferChunksClient, addr string, req *ingesterpb.TransferChunksRequest, clients Clients) error {
	s := streams[addr]
	if s == nil {
		c, err := clients.Client(addr)
		if err != nil {
			return err
		}
		if s, err = c.TransferChunks(ctx); err != nil {
			return fmt.Errorf("transfer to %s: %w", addr, err)
		}
		streams[addr] = s
	}
	if err := s.Send(req); err != nil {
		return fmt.Errorf("transfer to %s: %w", addr, err)
	}
	return nil
}
