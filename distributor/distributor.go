package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/time/rate"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Ring is what the distributor needs of the ring: the replicas of a key,
// and how many distributors share a tenant's ingestion rate.
type Ring interface {
	Get(key uint32) (ring.ReplicationSet, error)
	CountHealthy(component string) int
}

// HATracker elects the replica of an HA pair whose samples are kept.
type HATracker interface {
	Check(tenant, cluster, replica string, maxClusters int) error
}

// Clients hands out an ingester client by address.
type Clients interface {
	Client(addr string) (ingesterpb.IngesterClient, error)
}

// Limits gives a tenant's limits.
type Limits interface {
	For(tenant string) *limits.Limits
}

// Distributor validates remote writes and fans them out to ingesters.
type Distributor struct {
	cfg     Config
	ring    Ring
	clients Clients
	limits  Limits
	ha      HATracker
	logger  *slog.Logger

	ratesMu sync.Mutex
	rates   map[string]*rate.Limiter

	// requests in flight, and the memory they hold.
	requests atomic.Int64
	inflight inflight

	received  *prometheus.CounterVec
	discarded *prometheus.CounterVec
	exemplars *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	duration  prometheus.Histogram
	failures  *prometheus.CounterVec
	deduped   *prometheus.CounterVec

	states sync.Pool
}

// New returns a distributor. ha may be nil: then no tenant's HA pairs are
// de-duplicated.
func New(cfg Config, r Ring, clients Clients, l Limits, ha HATracker, reg prometheus.Registerer, logger *slog.Logger) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	d := &Distributor{
		cfg: cfg, ring: r, clients: clients, limits: l, ha: ha, logger: logger, rates: map[string]*rate.Limiter{},
		inflight: inflight{limit: cfg.InstanceLimits.MaxInflightPushRequestsBytes},
		exemplars: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_discarded_exemplars_total",
			Help: "Exemplars received and left out, per tenant: the tenant stores none (max_global_exemplars_per_user is 0), or they are invalid."}, []string{"tenant"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_instance_limit_rejections_total",
			Help: "Requests refused because the distributor was full, by limit."}, []string{"limit"}),
		received: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_received_samples_total",
			Help: "Samples received and accepted by validation, per tenant."}, []string{"tenant"}),
		discarded: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_discarded_samples_total",
			Help: "Samples discarded by validation, per tenant and reason."}, []string{"tenant", "reason"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_distributor_push_duration_seconds",
			Help: "Time to handle one remote-write request.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_ingester_push_failures_total",
			Help: "Failed pushes to one ingester, by error kind."}, []string{"kind"}),
		deduped: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_distributor_deduped_samples_total",
			Help: "Samples dropped because they came from the standby replica of an HA pair, per tenant and cluster."}, []string{"tenant", "cluster"}),
		states: sync.Pool{New: func() any { return &pushState{} }},
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "orrery_distributor_inflight_push_requests",
		Help: "Remote-write requests being handled."}, func() float64 { return float64(d.requests.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "orrery_distributor_inflight_push_requests_bytes",
		Help: "Memory held by remote-write requests in flight, as charged against -distributor.instance-limits.max-inflight-push-requests-bytes."},
		func() float64 { return float64(d.inflight.used.Load()) })
	return d, nil
}

// ServeHTTP handles POST /api/v1/push: remote write 1.0 and 2.0. Valid
// series are stored even when others are rejected; the response is then a
// 400 that names the first problem and how much was dropped. A 2.0 sender
// learns what was written from the X-Prometheus-Remote-Write-*-Written
// headers, on every response.
func (d *Distributor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { d.duration.Observe(time.Since(start).Seconds()) }()
	var written written
	var err error
	// Counted before the body is read: a slow upload holds its place.
	n := d.requests.Add(1)
	released := false
	release := func() {
		if !released {
			released = true
			d.requests.Add(-1)
		}
	}
	// Deferred too: a panic in handle, recovered by net/http, must not
	// keep the slot forever.
	defer release()
	if err = d.overInflightLimit(n); err == nil {
		written, err = d.handle(r)
	}
	release()
	h := w.Header()
	h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written.samples-written.histograms))
	h.Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(written.histograms))
	h.Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(written.exemplars))
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var full overloaded
	if errors.As(err, &full) {
		h.Set("Retry-After", retryAfter)
		d.rejected.WithLabelValues(full.limit).Inc()
	}
	code := apierr.HTTPStatus(err)
	if code >= 500 {
		d.logger.Warn("push failed", "err", err)
	}
	http.Error(w, err.Error(), code)
}

// overInflightLimit is the error of the n-th request in flight when that
// is over -distributor.instance-limits.max-inflight-push-requests.
func (d *Distributor) overInflightLimit(n int64) error {
	if limit := d.cfg.InstanceLimits.MaxInflightPushRequests; limit > 0 && n > int64(limit) {
		return overloaded{apierr.New(apierr.Unavailable, "the distributor is handling %d remote-write requests, its limit; retry later (%s: raise -distributor.instance-limits.max-inflight-push-requests, or add distributors)", limit, errIDInflightRequests), "max_inflight_push_requests"}
	}
	return nil
}

// pushState is the per-request scratch space, pooled: the parsed request
// and the encoded series alias buffers that live here.
type pushState struct {
	req     writeRequest
	valid   validated
	v       validator
	targets map[string]*target
	// m charges everything above to the request's limit and the
	// distributor's in-flight budget, until the state returns to the pool.
	m       meter
	version int
}

// written is what a request wrote: samples counts floats and histograms.
type written struct{ samples, histograms, exemplars int }

// handle returns what was written, which a partial 400 also reports.
func (d *Distributor) handle(r *http.Request) (written, error) {
	tenantID, err := tenant.FromContext(r.Context())
	if err != nil {
		return written{}, apierr.New(apierr.Unauthorized, "%s", err)
	}
	version, err := protocolOf(r)
	if err != nil {
		return written{}, err
	}
	ps, done := d.newState(version)
	body, err := readBody(r.Body, r.ContentLength, d.cfg.MaxRecvMsgSize, &ps.m)
	if err != nil {
		done()
		return written{}, err
	}
	return d.parseAndPush(r.Context(), tenantID, ps, body, done)
}

// Push writes a remote-write 1.0 request for tenantID as POST
// /api/v1/push writes its body: the same validation, limits, HA
// de-duplication and replication, and the same errors. It is the entry
// for writers inside Orrery (the ruler's recording rules and alerts'
// series), so that nothing they write skips what a client's write goes
// through. It returns how many samples were written.
func (d *Distributor) Push(ctx context.Context, tenantID string, req *prompb.WriteRequest) (int, error) {
	start := time.Now()
	defer func() { d.duration.Observe(time.Since(start).Seconds()) }()
	// Counted with remote write's requests, under the same instance limit.
	n := d.requests.Add(1)
	defer d.requests.Add(-1)
	if err := d.overInflightLimit(n); err != nil {
		d.rejected.WithLabelValues("max_inflight_push_requests").Inc()
		return 0, err
	}
	if size := req.Size(); size > d.cfg.MaxRecvMsgSize {
		return 0, apierr.New(apierr.TooLarge, "request is %d bytes, over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", size, d.cfg.MaxRecvMsgSize)
	}
	// Through the encoding on purpose: the request is parsed by the one
	// decoder remote write uses, so there is one path to validate.
	body, err := req.Marshal()
	if err != nil {
		return 0, apierr.New(apierr.BadData, "encoding the write request: %s", err)
	}
	ps, done := d.newState(v1)
	if err := ps.m.hold(len(body)); err != nil {
		done()
		return 0, err
	}
	w, err := d.parseAndPush(ctx, tenantID, ps, body, done)
	return w.samples, err
}

// newState takes a request's state from the pool, its memory charged to
// the request's limit and the in-flight budget. The state goes back to
// the pool, with that memory, only when done is called: when the last
// replica answered, which may be after the request has been answered.
func (d *Distributor) newState(version int) (*pushState, func()) {
	ps := d.states.Get().(*pushState)
	ps.version = version
	ps.m = meter{limit: d.cfg.MaxRequestDecodedBytes, pool: &d.inflight}
	ps.req.m = &ps.m
	return ps, func() {
		ps.m.release()
		d.states.Put(ps)
	}
}

// parseAndPush parses body, the uncompressed request of ps.version, into
// ps and pushes it; done is called once ps is no longer needed.
func (d *Distributor) parseAndPush(ctx context.Context, tenantID string, ps *pushState, body []byte, done func()) (written, error) {
	var err error
	if ps.version == v2 {
		err = ps.req.parseV2(body)
	} else {
		err = ps.req.parse(body)
	}
	if err != nil {
		done()
		var limited *apierr.Error
		if errors.As(err, &limited) {
			return written{}, err
		}
		msg := map[int]string{v1: "prometheus.WriteRequest", v2: "io.prometheus.write.v2.Request"}[ps.version]
		return written{}, apierr.New(apierr.BadData, "request body is not a valid %s protobuf: %s", msg, err)
	}
	return d.push(ctx, tenantID, ps, done)
}

// push validates the parsed request and writes its valid series. It returns
// a BadData error when anything was discarded, after storing the rest.
func (d *Distributor) push(ctx context.Context, tenantID string, ps *pushState, done func()) (written, error) {
	ps.valid.reset()
	lim := d.limits.For(tenantID)
	ps.v.scheme = lim.NameScheme()
	now := time.Now()
	ps.v.setLimits(lim, now)
	if err := d.checkHA(tenantID, lim, ps); err != nil {
		done()
		return written{}, err
	}
	var disc discards
	ps.v.validate(tenantID, &ps.req, &disc, &ps.valid)
	ps.v.validateMetadata(&ps.req, &disc, &ps.valid)
	for reason, n := range disc.byReason {
		d.discarded.WithLabelValues(tenantID, reason).Add(float64(n))
	}
	if n := ps.valid.exemplarsDropped; n > 0 {
		d.exemplars.WithLabelValues(tenantID).Add(float64(n))
	}
	samples, histograms, exemplars := ps.valid.samples, ps.valid.histograms, ps.valid.exemplars
	exemplarsDropped, exemplarProblem := ps.valid.exemplarsDropped, ps.valid.exemplarProblem
	var targets []*target
	var needed []int
	if len(ps.valid.series) > 0 || len(ps.valid.metadata) > 0 {
		var err error
		if targets, needed, err = d.plan(tenantID, ps); err != nil {
			done()
			return written{}, err
		}
	}
	if !d.allow(tenantID, lim, now, samples) {
		done()
		d.discarded.WithLabelValues(tenantID, reasonRateLimited).Add(float64(samples))
		return written{}, apierr.New(apierr.TooManyRequests, "the request's %d samples would exceed the tenant's ingestion rate limit of %g samples/s with a burst of %d (err-orrery-%s: raise the tenant's ingestion_rate and ingestion_burst_size, or -distributor.ingestion-rate-limit)",
			samples, lim.IngestionRate, lim.IngestionBurstSize, reasonRateLimited)
	}
	refused := 0
	if len(targets) > 0 {
		var err error
		if refused, err = d.send(ctx, tenantID, targets, needed, done); err != nil {
			return written{}, err
		}
		d.received.WithLabelValues(tenantID).Add(float64(samples))
	} else {
		done()
	}
	var problems []string
	if disc.first != "" {
		problems = append(problems, fmt.Sprintf("%s; %d samples discarded, %d stored", disc.first, disc.samples, samples))
	}
	// Remote write 2.0: "Receivers MUST NOT return a 2xx HTTP status code
	// if any of the pieces of sent data known to the Receiver (e.g.
	// Samples, Histograms, Exemplars) were NOT written successfully", with
	// a human-readable message. Exemplars the distributor leaves out (the
	// tenant stores none, or they are invalid) make a 2.0 request a 400
	// once the rest is stored, its X-Prometheus-Remote-Write-Exemplars-
	// Written header saying what was; so do exemplars the ingesters
	// refuse (out of order), as Prometheus 3's receiver answers them. 1.0
	// has no such rule: its exemplars are dropped and counted, as a
	// Prometheus without exemplar storage does, and the ingesters' refusals
	// are only counted, as Prometheus's 1.0 receiver only logs them.
	exemplars -= min(refused, exemplars)
	if exemplarsDropped > 0 && ps.version == v2 {
		problems = append(problems, fmt.Sprintf("%s; %d exemplars not written, %d written", exemplarProblem, exemplarsDropped, exemplars))
	}
	if refused > 0 && ps.version == v2 {
		problems = append(problems, fmt.Sprintf("%d exemplars were not stored: out of order (older than their series' newest exemplar) or of series not stored; %d written (err-orrery-%s)", refused, exemplars, reasonExemplarOutOfOrder))
	}
	w := written{samples, histograms, exemplars}
	if len(problems) > 0 {
		return w, apierr.New(apierr.BadData, "%s", strings.Join(problems, "; "))
	}
	return w, nil
}

// checkHA applies HA de-duplication to a request whose first series
// carries both the cluster and the replica label, as Mimir does: a request
// from the standby replica is dropped whole with a 202, and the elected
// replica's series lose the replica label, so both replicas' series are
// one series.
func (d *Distributor) checkHA(tenantID string, lim *limits.Limits, ps *pushState) error {
	if d.ha == nil || !lim.AcceptHASamples || len(ps.req.series) == 0 {
		return nil
	}
	var cluster, replica string
	for _, l := range ps.req.seriesLabels(&ps.req.series[0]) {
		switch yolo(l.name) {
		case lim.HAClusterLabel:
			cluster = yolo(l.value)
		case lim.HAReplicaLabel:
			replica = yolo(l.value)
		}
	}
	if cluster == "" || replica == "" {
		return nil
	}
	if err := d.ha.Check(tenantID, cluster, replica, lim.HAMaxClusters); err != nil {
		if apierr.KindOf(err) == apierr.Deduplicated {
			d.deduped.WithLabelValues(tenantID, strings.Clone(cluster)).Add(float64(len(ps.req.samples)))
		}
		return err
	}
	ps.v.dropLabel = lim.HAReplicaLabel
	return nil
}

// allow takes n samples from the tenant's token bucket. The tenant's rate
// is cluster-wide: each distributor allows its share, the rate divided by
// the healthy distributors in the ring (Mimir's "global" strategy, which
// assumes the load balancer spreads a tenant's writes evenly). The burst
// is not divided, so a single request as large as the burst always fits.
func (d *Distributor) allow(tenantID string, l *limits.Limits, now time.Time, n int) bool {
	if l.IngestionRate <= 0 {
		return true
	}
	share := rate.Limit(l.IngestionRate / float64(max(1, d.ring.CountHealthy("distributor"))))
	d.ratesMu.Lock()
	defer d.ratesMu.Unlock()
	lim := d.rates[tenantID]
	if lim == nil {
		lim = rate.NewLimiter(share, l.IngestionBurstSize)
		d.rates[tenantID] = lim
	}
	if lim.Limit() != share {
		lim.SetLimitAt(now, share)
	}
	if lim.Burst() != l.IngestionBurstSize {
		lim.SetBurstAt(now, l.IngestionBurstSize)
	}
	return lim.AllowN(now, n)
}

// target is one ingester and what it should receive. idx numbers the
// series first, then the metadata, for the quorum count.
type target struct {
	addr     string
	enc      []byte
	metadata []*ingesterpb.MetricMetadata
	idx      []int
}

// send pushes each series to its replicas and answers once the outcome is
// decided: every series reached its quorum, or one cannot any more. A
// write that reached its quorum still waits up to ReplicaWait for the
// replicas not yet answered. Without that wait a client's next write,
// sent as soon as this one is answered, often reaches the slowest replica
// first; that replica then refuses this write's samples as out of order,
// keeps a gap its peers do not have, and from then on its chunks of those
// series differ from theirs, so every query merges them sample by sample
// instead of reading one copy (measured: 5,040-series gaps ten times per
// ingester in the query benchmark's load, which sends one round after
// another). The wait is twice the time the write took to reach its
// quorum, at most ReplicaWait. Replicas slower than that finish in the
// background under RemoteTimeout, so a paused ingester costs each write
// the wait, not the timeout. An ingester's BadData
// answer means it stored the rest, so it counts towards the quorum and the
// message is passed on. done is called once every replica has answered:
// until then the targets' buffers are in use.
// It returns the most exemplars any replica refused: a replica refuses
// those of its series, and its copies of a series' exemplars are refused
// alike.
func (d *Distributor) send(ctx context.Context, tenantID string, targets []*target, needed []int, done func()) (int, error) {
	start := time.Now()
	pushCtx, cancel := context.WithTimeout(tenant.WithID(context.WithoutCancel(ctx), tenantID), d.cfg.RemoteTimeout)
	results := make(chan result, len(targets))
	for _, t := range targets {
		go func() {
			refused, err := d.pushTo(pushCtx, t)
			results <- result{t: t, err: err, exemplarsRefused: refused}
		}()
	}
	q := newQuorum(needed, targets)
	answered := 0
	for answered < len(targets) && !q.decided() {
		r := <-results
		answered++
		q.add(r)
	}
	err := q.err()
	if answered < len(targets) && d.cfg.ReplicaWait > 0 && (err == nil || apierr.KindOf(err) == apierr.BadData) {
		// The answer is decided; what the stragglers say no longer
		// changes it, only when it is given. A write that failed its
		// quorum is retried by its client anyway, so it does not wait.
		// A client's next write takes about as long to reach a replica
		// as this one took to reach its quorum, so twice that covers a
		// replica that is a little behind its peers; one much slower
		// (alive but overloaded) costs each write that, not the whole
		// ReplicaWait: the ruler writes once per rule.
		wait := time.NewTimer(min(d.cfg.ReplicaWait, 2*time.Since(start)))
	straggle:
		for answered < len(targets) {
			select {
			case <-results:
				answered++
			case <-wait.C:
				break straggle
			case <-ctx.Done():
				break straggle
			}
		}
		wait.Stop()
	}
	go func() {
		for ; answered < len(targets); answered++ {
			<-results
		}
		cancel()
		done()
	}()
	return q.exemplarsRefused, err
}

type result struct {
	t   *target
	err error
	// exemplarsRefused is what the ingester did not store of the
	// exemplars it was sent.
	exemplarsRefused int
}

// quorum tracks, per series and metadata entry, how many replicas took it
// and how many may still answer.
type quorum struct {
	needed, ok, pending []int
	unmet               int
	failed              bool
	badData, other      error
	exemplarsRefused    int
}

func newQuorum(needed []int, targets []*target) *quorum {
	q := &quorum{needed: needed, ok: make([]int, len(needed)), pending: make([]int, len(needed)), unmet: len(needed)}
	for _, n := range needed {
		if n <= 0 {
			q.unmet--
		}
	}
	for _, t := range targets {
		for _, i := range t.idx {
			q.pending[i]++
		}
	}
	return q
}

func (q *quorum) decided() bool { return q.failed || q.unmet == 0 }

func (q *quorum) add(r result) {
	q.exemplarsRefused = max(q.exemplarsRefused, r.exemplarsRefused)
	success := r.err == nil || apierr.KindOf(r.err) == apierr.BadData
	switch {
	case r.err == nil:
	case success:
		q.badData = errors.Join(q.badData, r.err)
	default:
		q.other = r.err
	}
	for _, i := range r.t.idx {
		q.pending[i]--
		if !success {
			continue
		}
		q.ok[i]++
		if q.ok[i] == q.needed[i] {
			q.unmet--
		}
	}
	for _, i := range r.t.idx {
		if q.ok[i]+q.pending[i] < q.needed[i] {
			q.failed = true
		}
	}
}

func (q *quorum) err() error {
	if q.failed || q.unmet > 0 {
		// A 5xx, so the client retries: replicas that did take the samples
		// accept the identical retry silently.
		return apierr.New(apierr.Unavailable, "write did not reach the replicas needed for a quorum: %s", q.other)
	}
	if q.badData != nil {
		return apierr.New(apierr.BadData, "%s", q.badData)
	}
	return nil
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
				// Each replica's copy counts against the request's limit,
				// before it is made.
				if err := ps.m.add(series[k].hi - series[k].lo); err != nil {
					return nil, nil, err
				}
				t.enc = append(t.enc, ps.valid.enc[series[k].lo:series[k].hi]...)
			} else {
				t.metadata = append(t.metadata, ps.valid.metadata[k-len(series)])
			}
			t.idx = append(t.idx, k)
		}
	}
	return targets, needed, nil
}

// pushTo pushes a target's series and returns how many of its exemplars
// it did not store.
func (d *Distributor) pushTo(ctx context.Context, t *target) (int, error) {
	c, err := d.clients.Client(t.addr)
	var resp *ingesterpb.PushResponse
	if err == nil {
		resp, err = c.Push(ctx, &ingesterpb.PushRequest{Series: t.enc, Metadata: t.metadata})
	}
	if err != nil {
		err = fmt.Errorf("ingester %s: push: %w", t.addr, apierr.FromGRPC(err))
		d.failures.WithLabelValues(kindLabel(err)).Inc()
		return 0, err
	}
	return int(resp.GetExemplarsRefused()), nil
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
