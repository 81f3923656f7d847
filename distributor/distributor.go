package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Ring is what the distributor needs of the ring: the replicas of a key.
type Ring interface {
	Get(key uint32) (ring.ReplicationSet, error)
}

// Clients hands out an ingester client by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// Distributor validates remote writes and fans them out to ingesters.
type Distributor struct {
	cfg     Config
	scheme  model.ValidationScheme
	ring    Ring
	clients Clients
	logger  *slog.Logger

	received  *prometheus.CounterVec
	discarded *prometheus.CounterVec
	duration  prometheus.Histogram
	failures  *prometheus.CounterVec

	states sync.Pool
}

// New returns a distributor.
func New(cfg Config, r Ring, clients Clients, reg prometheus.Registerer, logger *slog.Logger) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scheme, _ := cfg.scheme()
	f := promauto.With(reg)
	return &Distributor{
		cfg: cfg, scheme: scheme, ring: r, clients: clients, logger: logger,
		received: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_received_samples_total",
			Help: "Samples received and accepted by validation, per tenant."}, []string{"tenant"}),
		discarded: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_discarded_samples_total",
			Help: "Samples discarded by validation, per tenant and reason."}, []string{"tenant", "reason"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_distributor_push_duration_seconds",
			Help: "Time to handle one remote-write request.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_ingester_push_failures_total",
			Help: "Failed pushes to one ingester, by error kind."}, []string{"kind"}),
		states: sync.Pool{New: func() any { return &pushState{} }},
	}, nil
}

// ServeHTTP handles POST /api/v1/push: remote write 1.0. Valid series are
// stored even when others are rejected; the response is then a 400 that
// names the first problem and how much was dropped.
func (d *Distributor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { d.duration.Observe(time.Since(start).Seconds()) }()
	err := d.handle(r)
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	code := apierr.HTTPStatus(err)
	if code >= 500 {
		d.logger.Warn("push failed", "err", err)
	}
	http.Error(w, err.Error(), code)
}

// pushState is the per-request scratch space, pooled: the parsed request
// and the encoded series alias buffers that live here.
type pushState struct {
	req     writeRequest
	valid   validated
	v       validator
	targets map[string]*target
}

func (d *Distributor) handle(r *http.Request) error {
	tenantID, err := tenant.FromContext(r.Context())
	if err != nil {
		return apierr.New(apierr.Unauthorized, "%s", err)
	}
	if err := checkContentType(r); err != nil {
		return err
	}
	body, err := readBody(r.Body, r.ContentLength, d.cfg.MaxRecvMsgSize)
	if err != nil {
		return err
	}
	ps := d.states.Get().(*pushState)
	defer d.states.Put(ps)
	if err := ps.req.parse(body); err != nil {
		return apierr.New(apierr.BadData, "request body is not a valid prometheus.WriteRequest protobuf: %s", err)
	}
	return d.push(r.Context(), tenantID, ps)
}

// push validates the parsed request and writes its valid series. It returns
// a BadData error when anything was discarded, after storing the rest.
func (d *Distributor) push(ctx context.Context, tenantID string, ps *pushState) error {
	ps.valid.reset()
	ps.v.scheme = d.scheme
	var disc discards
	ps.v.validate(tenantID, &ps.req, &disc, &ps.valid)
	ps.v.validateMetadata(&ps.req, &disc, &ps.valid)
	for reason, n := range disc.byReason {
		d.discarded.WithLabelValues(tenantID, reason).Add(float64(n))
	}
	if len(ps.valid.series) > 0 || len(ps.valid.metadata) > 0 {
		if err := d.send(ctx, tenantID, ps); err != nil {
			return err
		}
		d.received.WithLabelValues(tenantID).Add(float64(ps.valid.samples))
	}
	if disc.first != "" {
		return apierr.New(apierr.BadData, "%s; %d samples discarded, %d stored", disc.first, disc.samples, ps.valid.samples)
	}
	return nil
}

// target is one ingester and what it should receive. idx numbers the
// series first, then the metadata, for the quorum count.
type target struct {
	addr     string
	enc      []byte
	metadata []*ingesterpb.MetricMetadata
	idx      []int
}

// send pushes each series to its replicas and checks that every series
// reached a quorum. An ingester's BadData answer means it stored the rest,
// so it counts towards the quorum and the message is passed on.
func (d *Distributor) send(ctx context.Context, tenantID string, ps *pushState) error {
	targets, needed, err := d.plan(tenantID, ps)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(tenant.WithID(ctx, tenantID), d.cfg.RemoteTimeout)
	defer cancel()
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for k, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = d.pushTo(ctx, t)
		}()
	}
	wg.Wait()
	return quorum(targets, errs, needed)
}

func (d *Distributor) plan(tenantID string, ps *pushState) ([]*target, []int, error) {
	if ps.targets == nil {
		ps.targets = map[string]*target{}
	}
	for _, t := range ps.targets {
		t.enc, t.metadata, t.idx = t.enc[:0], t.metadata[:0], t.idx[:0]
	}
	var targets []*target
	series := ps.valid.series
	needed := make([]int, len(series)+len(ps.valid.metadata))
	for k := range needed {
		var key uint32
		if k < len(series) {
			key = series[k].key
		} else {
			// Metadata lives with its metric name's series of no labels.
			ps.v.hasher.Reset(tenantID)
			ps.v.hasher.Add(metricName, []byte(ps.valid.metadata[k-len(series)].MetricFamilyName))
			key = ps.v.hasher.Sum()
		}
		rs, err := d.ring.Get(key)
		if err != nil {
			return nil, nil, apierr.New(apierr.Unavailable, "distributor: no ingesters for a series: %s", err)
		}
		needed[k] = len(rs.Instances) - rs.MaxErrors
		for _, inst := range rs.Instances {
			t := ps.targets[inst.Addr]
			if t == nil {
				t = &target{addr: inst.Addr}
				ps.targets[inst.Addr] = t
			}
			if len(t.idx) == 0 {
				targets = append(targets, t)
			}
			if k < len(series) {
				t.enc = append(t.enc, ps.valid.enc[series[k].lo:series[k].hi]...)
			} else {
				t.metadata = append(t.metadata, ps.valid.metadata[k-len(series)])
			}
			t.idx = append(t.idx, k)
		}
	}
	return targets, needed, nil
}

func (d *Distributor) pushTo(ctx context.Context, t *target) error {
	c, err := d.clients.Client(t.addr)
	if err == nil {
		_, err = c.Push(ctx, &ingesterpb.PushRequest{Series: t.enc, Metadata: t.metadata})
	}
	if err != nil {
		err = fmt.Errorf("ingester %s: push: %w", t.addr, apierr.FromGRPC(err))
		d.failures.WithLabelValues(kindLabel(err)).Inc()
	}
	return err
}

func quorum(targets []*target, errs []error, needed []int) error {
	ok := make([]int, len(needed))
	var badData, other error
	for k, t := range targets {
		err := errs[k]
		switch {
		case err == nil:
		case apierr.KindOf(err) == apierr.BadData:
			badData = errors.Join(badData, err)
		default:
			other = err
			continue
		}
		for _, i := range t.idx {
			ok[i]++
		}
	}
	for i := range needed {
		if ok[i] < needed[i] {
			// A 5xx, so the client retries: replicas that did take the
			// samples accept the identical retry silently.
			return apierr.New(apierr.Unavailable, "write reached %d of the %d replicas needed: %s", ok[i], needed[i], other)
		}
	}
	if badData != nil {
		return apierr.New(apierr.BadData, "%s", badData)
	}
	return nil
}

func kindLabel(err error) string {
	switch apierr.KindOf(err) {
	case apierr.BadData:
		return "bad_data"
	case apierr.Unavailable:
		return "unavailable"
	default:
		return "other"
	}
}
