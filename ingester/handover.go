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
	"github.com/orrery/orrery/ingester/chunks"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Owners is what handover needs of the ring: a series' owners now (Get
// passes over JOINING and LEAVING instances, this one included, and leaves
// out unhealthy ones), and every instance with its health, to refuse
// handing over while a possible target is unhealthy.
type Owners interface {
	Get(key uint32) (ring.ReplicationSet, error)
	Instances() []*ringpb.Instance
	IsHealthy(inst *ringpb.Instance, now time.Time) bool
}

// Clients hands out a client of another ingester by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// transferBatchSeries bounds how many series a handover reads from the
// store at once, and so one TransferChunks message; transferBatchBytes
// bounds a message's chunk bytes, for series with long histories.
const (
	transferBatchSeries = 256
	transferBatchBytes  = 8 << 20
)

// TransferChunks implements ingesterpb.IngesterServer: it stores the chunks
// a leaving ingester hands over. They go to the store, not to memory, so
// they never meet this ingester's out-of-order checks nor its series
// limits (they were acknowledged once already). A chunk this ingester
// holds already is a no-op, and one ending when a stored chunk does is
// merged with it (store.Put); where they overlap what is in memory,
// queries de-duplicate. An ingester handing over itself refuses transfers
// (Unavailable): its own handover streams its store once, after every
// transfer it accepted has ended, so nothing may arrive later.
func (i *Ingester) TransferChunks(stream ingesterpb.Ingester_TransferChunksServer) error {
	tenantID, err := tenant.FromContext(stream.Context())
	if err != nil {
		return apierr.ToGRPC(apierr.New(apierr.Unauthorized, "%s", err))
	}
	i.pushGate.RLock()
	leaving := i.handingOver
	if !leaving {
		i.transfers.Add(1)
	}
	i.pushGate.RUnlock()
	if leaving {
		return apierr.ToGRPC(apierr.New(apierr.Unavailable, "ingester is leaving and handing its own series over: hand over to another owner"))
	}
	defer i.transfers.Done()
	resp := &ingesterpb.TransferChunksResponse{}
	var b labels.ScratchBuilder
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		if req.Deletions != nil {
			if err := i.receiveDeletions(tenantID, req.Deletions); err != nil {
				return err
			}
		}
		batch := make([]chunks.SeriesChunks, 0, len(req.Series))
		received := 0
		for _, s := range req.Series {
			sc := chunks.SeriesChunks{Labels: ingesterpb.ToLabels(&b, s.Labels)}
			for _, c := range s.Chunks {
				chk := chunks.Chunk{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Encoding: chunkenc.Encoding(c.Encoding), Data: c.Data}
				// A damaged chunk would fail the whole batch's merge, and
				// every retry of the handover with it: it is dropped and
				// counted, as no query could read it either.
				if err := chk.Check(); err != nil {
					i.m.chunksRefused.Inc()
					i.logger.Error("transferred chunk dropped: it does not decode", "tenant", tenantID, "series", sc.Labels.String(), "min_time", c.MinTimeMs, "max_time", c.MaxTimeMs, "err", err)
					continue
				}
				sc.Chunks = append(sc.Chunks, chk)
			}
			if len(sc.Chunks) > 0 {
				batch = append(batch, sc)
			}
			received += len(sc.Chunks)
		}
		if err := i.storeTransferred(tenantID, batch); err != nil {
			return apierr.ToGRPC(fmt.Errorf("ingester: store transferred chunks: %w", err))
		}
		resp.Series += int64(len(batch))
		resp.Chunks += int64(received)
		i.m.chunksReceived.Add(float64(received))
	}
}

// storeTransferred notes a transferred batch in memory, then puts it in
// the store, with the tenant's pushes held off (transferLock): a series in
// memory learns how far the store will reach before the chunks are there,
// and one a push creates reads the store once they are.
func (i *Ingester) storeTransferred(tenantID string, batch []chunks.SeriesChunks) error {
	l := i.transferLock(tenantID)
	l.Lock()
	defer l.Unlock()
	i.noteStored(tenantID, batch)
	return i.store.Put(tenantID, batch)
}

// noteStored tells the series in memory that batch puts chunks of in the
// store how far their stored samples may now reach, so that an old sample
// is looked for there.
func (i *Ingester) noteStored(tenantID string, batch []chunks.SeriesChunks) {
	h := i.head(tenantID, false)
	if h == nil {
		return
	}
	var enc, scratch []byte
	for _, sc := range batch {
		enc = ingesterpb.AppendLabels(enc[:0], sc.Labels)
		h.mu.RLock()
		s := h.lookup(seriesHash(enc), enc, &scratch)
		h.mu.RUnlock()
		if s == nil {
			continue
		}
		s.mu.Lock()
		for _, c := range sc.Chunks {
			s.stored(c.MaxTime)
		}
		s.mu.Unlock()
	}
}

// LastPush is when this ingester last appended samples, for a leaving
// ingester to know that distributors have stopped sending.
func (i *Ingester) LastPush() time.Time {
	return time.Unix(0, i.lastPush.Load())
}

// Handover gives every series this ingester holds to every owner the ring
// names for it now, this ingester excluded: it stops taking pushes and
// transfers, waits out the transfers in flight, flushes memory to its own
// store, then streams the store to those owners in bounded batches. It
// never assumes an owner holds a series already: data written before the
// ring last changed (an ingester joined since, a replica restarted or left)
// may be only here. An owner that has it receives a no-op (store.Put).
//
// It fails, handing over nothing for sure, unless at least one other
// ingester is ACTIVE and every ACTIVE one is healthy, and still is at the
// end: an unhealthy owner is left out of the ring's answer, and would miss
// its copy. Once called, the ingester refuses pushes and transfers for
// good; a failed Handover may be called again, and sends everything again.
func (i *Ingester) Handover(ctx context.Context, self string, owners Owners, clients Clients) error {
	i.pushGate.Lock()
	i.handingOver = true
	i.pushGate.Unlock()
	if err := i.waitTransfers(ctx); err != nil {
		return fmt.Errorf("ingester: handover: wait for transfers in flight: %w", err)
	}
	if !i.flush(true) {
		// Handover streams the store: chunks left in memory would be lost.
		return errors.New("ingester: handover: flushing memory to the store failed (see orrery_ingester_flush_failures_total)")
	}
	targets, err := healthyTargets(owners, self)
	if err != nil {
		return fmt.Errorf("ingester: handover: %w", err)
	}
	tenants, err := i.store.Tenants()
	if err != nil {
		return fmt.Errorf("ingester: handover: %w", err)
	}
	// A tenant whose data is all deleted still has deletions to hand over.
	tenants = slices.Compact(slices.Sorted(slices.Values(append(tenants, i.deleted.tenants()...))))
	var targetAddrs []string
	for _, inst := range owners.Instances() {
		if targets[inst.GetId()] {
			targetAddrs = append(targetAddrs, inst.GetAddr())
		}
	}
	start, sent := time.Now(), 0
	for _, tenantID := range tenants {
		n, err := i.handoverTenant(tenant.WithID(ctx, tenantID), tenantID, self, targetAddrs, owners, clients)
		sent += n
		if err != nil {
			return fmt.Errorf("ingester: handover of tenant %s: %w", tenantID, err)
		}
	}
	if err := stillHealthy(owners, targets); err != nil {
		return fmt.Errorf("ingester: handover: the ring changed while handing over: %w", err)
	}
	i.logger.Info("handover done", "tenants", len(tenants), "series_sent", sent, "duration", time.Since(start))
	return nil
}

// waitTransfers waits until no transfer into this ingester is in flight.
// The caller has set handingOver, so no new one starts.
func (i *Ingester) waitTransfers(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		i.transfers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errNoTarget means no other ingester can take the series now.
var errNoTarget = errors.New("no other ACTIVE ingester to hand over to")

// healthyTargets returns the ids of the ACTIVE token owners other than
// self, the only instances Get may name, if every one is healthy.
func healthyTargets(owners Owners, self string) (map[string]bool, error) {
	now := time.Now()
	out := map[string]bool{}
	for _, inst := range owners.Instances() {
		if !inst.GetOwnsTokens() || len(inst.GetTokens()) == 0 || inst.GetAddr() == self || inst.GetState() != ringpb.State_ACTIVE {
			continue
		}
		if !owners.IsHealthy(inst, now) {
			return nil, fmt.Errorf("ACTIVE ingester %s (%s) is unhealthy: it would miss the series it owns", inst.GetId(), inst.GetAddr())
		}
		out[inst.GetId()] = true
	}
	if len(out) == 0 {
		return nil, errNoTarget
	}
	return out, nil
}

// stillHealthy checks that every target is still ACTIVE and healthy: one
// that was left out of Get's answers for a while, or started leaving
// itself, may lack series it owns.
func stillHealthy(owners Owners, targets map[string]bool) error {
	now := time.Now()
	found := 0
	for _, inst := range owners.Instances() {
		if !targets[inst.GetId()] {
			continue
		}
		found++
		if inst.GetState() != ringpb.State_ACTIVE || !owners.IsHealthy(inst, now) {
			return fmt.Errorf("ingester %s is now %s, healthy %v", inst.GetId(), inst.GetState(), owners.IsHealthy(inst, now))
		}
	}
	if found != len(targets) {
		return errors.New("an ingester handed to is no longer in the ring")
	}
	return nil
}

// handoverTenant sends one tenant's deletions to every target, then
// streams its stored series to their owners, one store batch at a time,
// and returns how many series it sent (counting each owner).
func (i *Ingester) handoverTenant(ctx context.Context, tenantID, self string, targets []string, owners Owners, clients Clients) (int, error) {
	// Canceling ends the streams a failure leaves open; what their
	// receivers stored already stays, and a retry sends it as a no-op.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := map[string]ingesterpb.Ingester_TransferChunksClient{}
	sent := 0
	// DeleteSeries refuses once handingOver is set; taking deleteMu waits
	// for one that passed that check before, so no deletion is missed.
	i.deleteMu.Lock()
	stones, wire := i.deleted.tombstones(tenantID), i.wireDeletions(tenantID)
	i.deleteMu.Unlock()
	if wire != nil {
		for _, addr := range targets {
			if err := sendTransfer(ctx, streams, addr, &ingesterpb.TransferChunksRequest{Deletions: wire}, clients); err != nil {
				return 0, err
			}
		}
	}
	// Deleted samples are not sent: the receivers have the tombstones
	// now, and would only store what they hide.
	err := i.store.SelectBatches(tenantID, math.MinInt64, math.MaxInt64, transferBatchSeries, nil, func(batch []chunks.SeriesChunks) error {
		pending := map[string]*ingesterpb.TransferChunksRequest{}
		size := map[string]int{}
		for _, sc := range batch {
			// Runs go as the chunks they were made from: a receiver of
			// an earlier version stores what it can read.
			var err error
			if sc.Chunks, err = chunks.ExpandRuns(sc.Chunks, math.MinInt64, math.MaxInt64); err != nil {
				return err
			}
			if sc.Chunks, err = withoutDeleted(sc.Chunks, deletedIntervals(stones, sc.Labels)); err != nil {
				return err
			}
			if len(sc.Chunks) == 0 {
				continue
			}
			rs, err := owners.Get(ring.ShardKey(tenantID, sc.Labels))
			if err != nil {
				return err
			}
			wire, n := toWire(sc, false), chunkBytes(sc)
			for _, inst := range rs.Instances {
				if inst.GetAddr() == self {
					continue
				}
				req := pending[inst.GetAddr()]
				if req == nil {
					req = &ingesterpb.TransferChunksRequest{}
					pending[inst.GetAddr()] = req
				}
				req.Series = append(req.Series, wire)
				size[inst.GetAddr()] += n
				sent++
				if size[inst.GetAddr()] >= transferBatchBytes {
					if err := sendTransfer(ctx, streams, inst.GetAddr(), req, clients); err != nil {
						return err
					}
					delete(pending, inst.GetAddr())
					delete(size, inst.GetAddr())
				}
			}
		}
		for addr, req := range pending {
			if err := sendTransfer(ctx, streams, addr, req, clients); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sent, err
	}
	for addr, s := range streams {
		if _, err := s.CloseAndRecv(); err != nil {
			return sent, fmt.Errorf("transfer to %s: %w", addr, err)
		}
	}
	return sent, nil
}

func chunkBytes(sc chunks.SeriesChunks) int {
	n := 0
	for _, c := range sc.Chunks {
		n += len(c.Data)
	}
	return n
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
		if errors.Is(err, io.EOF) {
			// The receiver ended the stream: its status says why.
			_, err = s.CloseAndRecv()
		}
		return fmt.Errorf("transfer to %s: %w", addr, err)
	}
	return nil
}
