package ring

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orrery/orrery/proto/ringpb"
)

// metrics are this member's view of the ring. With a nil Registerer they
// are created but not registered, so several members can share a process.
// A registration conflict is returned as an error, never a panic.
type metrics struct {
	members        *prometheus.GaugeVec
	healthy        prometheus.Gauge
	tokensOwned    prometheus.Gauge
	ownedRatio     prometheus.Gauge
	tokenConflicts prometheus.Counter
	forgotten      prometheus.Counter
	selfConflicts  prometheus.Counter

	received     *prometheus.CounterVec
	decodeErrors prometheus.Counter
	tooLarge     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, m *Member) (*metrics, error) {
	f := &factory{}
	out := &metrics{
		members: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orrery_ring_members",
			Help: "Instances in this member's view of the ring, by state.",
		}, []string{"state"}),
		healthy: f.NewGauge(prometheus.GaugeOpts{
			Name: "orrery_ring_healthy_members",
			Help: "Instances whose heartbeat is within -ring.heartbeat-timeout.",
		}),
		tokensOwned: f.NewGauge(prometheus.GaugeOpts{
			Name: "orrery_ring_tokens_owned",
			Help: "Tokens this instance owns in the ring after conflicts are resolved.",
		}),
		ownedRatio: f.NewGauge(prometheus.GaugeOpts{
			Name: "orrery_ring_token_space_owned_ratio",
			Help: "Share of the token space this instance owns, 0 to 1.",
		}),
		tokenConflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "orrery_ring_token_conflicts_resolved_total",
			Help: "Tokens this instance gave up to a lower id that claimed them too, and replaced.",
		}),
		forgotten: f.NewCounter(prometheus.CounterOpts{
			Name: "orrery_ring_instances_forgotten_total",
			Help: "Instances turned into tombstones after 10x -ring.heartbeat-timeout without a heartbeat.",
		}),
		selfConflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "orrery_ring_self_version_bumps_total",
			Help: "Times a peer held a newer entry for this instance's id (restart over an old tombstone, or a duplicate id).",
		}),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orrery_memberlist_received_messages_total",
			Help: "Ring state messages received, by kind (broadcast or push_pull).",
		}, []string{"kind"}),
		decodeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "orrery_memberlist_decode_errors_total",
			Help: "Ring state messages or entries dropped because they could not be decoded or were invalid.",
		}),
		tooLarge: f.NewCounter(prometheus.CounterOpts{
			Name: "orrery_memberlist_broadcasts_skipped_total",
			Help: "Updates too large for one UDP packet, left to the periodic push/pull.",
		}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orrery_memberlist_members",
		Help: "Members memberlist considers alive, this one included.",
	}, func() float64 {
		if ml := m.ml.Load(); ml != nil {
			return float64(ml.NumMembers())
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orrery_memberlist_health_score",
		Help: "memberlist's awareness score; 0 is healthy, higher means this node misses probes.",
	}, func() float64 {
		if ml := m.ml.Load(); ml != nil {
			return float64(ml.GetHealthScore())
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orrery_memberlist_broadcast_queue_length",
		Help: "Ring updates waiting to be gossiped.",
	}, func() float64 { return float64(m.queue.NumQueued()) })
	if err := f.register(reg); err != nil {
		return nil, err
	}
	return out, nil
}

// factory creates collectors and remembers them for registration.
type factory struct{ created []prometheus.Collector }

// register registers everything created; nil reg registers nothing.
func (f *factory) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var errs []error
	var done []prometheus.Collector
	for _, c := range f.created {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, c)
	}
	if err := errors.Join(errs...); err != nil {
		// Leave the registry as it was, so a retry does not conflict
		// with half of this attempt.
		for _, c := range done {
			reg.Unregister(c)
		}
		return fmt.Errorf("register ring metrics: %w", err)
	}
	return nil
}

func (f *factory) NewGauge(o prometheus.GaugeOpts) prometheus.Gauge {
	g := prometheus.NewGauge(o)
	f.created = append(f.created, g)
	return g
}

func (f *factory) NewGaugeVec(o prometheus.GaugeOpts, labels []string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(o, labels)
	f.created = append(f.created, g)
	return g
}

func (f *factory) NewGaugeFunc(o prometheus.GaugeOpts, fn func() float64) {
	f.created = append(f.created, prometheus.NewGaugeFunc(o, fn))
}

func (f *factory) NewCounter(o prometheus.CounterOpts) prometheus.Counter {
	c := prometheus.NewCounter(o)
	f.created = append(f.created, c)
	return c
}

func (f *factory) NewCounterVec(o prometheus.CounterOpts, labels []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(o, labels)
	f.created = append(f.created, c)
	return c
}

// observe sets the gauges from a snapshot.
func (x *metrics) observe(s *snapshot, r *Ring, selfID string, now time.Time) {
	counts := map[ringpb.State]int{}
	healthy := 0
	for _, in := range s.instances {
		counts[in.GetState()]++
		if r.IsHealthy(in, now) {
			healthy++
		}
	}
	for v, name := range ringpb.State_name {
		x.members.WithLabelValues(name).Set(float64(counts[ringpb.State(v)]))
	}
	x.healthy.Set(float64(healthy))
	x.tokensOwned.Set(float64(s.tokensOwned(selfID)))
	x.ownedRatio.Set(s.owned[selfID])
}
