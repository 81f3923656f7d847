package hatracker

import (
	"cmp"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/hapb"
)

// SharedName is the name the elections are gossiped under.
const SharedName = "ha-tracker"

// forgetAfter is how long an election is kept after its replica's last
// push, as Mimir's tracker cleans up: a cluster that stopped sending stops
// counting against ha_max_clusters. Every distributor applies the same
// rule to the same fields, so a forgotten election that comes back from a
// peer is forgotten again, not resurrected.
const forgetAfter = 30 * time.Minute

// Config holds the timeouts, the same for every tenant, as in Mimir.
type Config struct {
	// UpdateTimeout is how often the elected replica's last push time is
	// gossiped: a failover may come up to this much early.
	UpdateTimeout time.Duration `yaml:"update_timeout"`
	// FailoverTimeout is how long the elected replica may be silent before
	// another replica's push takes over.
	FailoverTimeout time.Duration `yaml:"failover_timeout"`
}

// RegisterFlags registers the tracker's flags with Mimir's defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.UpdateTimeout, "distributor.ha-tracker.update-timeout", 15*time.Second, "How often the elected replica's last push time is shared with the other distributors.")
	fs.DurationVar(&c.FailoverTimeout, "distributor.ha-tracker.failover-timeout", 30*time.Second, "How long the elected replica of an HA pair may be silent before another replica is accepted.")
}

// Validate reports timeouts that cannot work together.
func (c *Config) Validate() error {
	if c.UpdateTimeout <= 0 || c.FailoverTimeout <= c.UpdateTimeout {
		return fmt.Errorf("distributor.ha-tracker: failover timeout (%s) must be longer than the update timeout (%s), which must be positive", c.FailoverTimeout, c.UpdateTimeout)
	}
	return nil
}

type key struct{ tenant, cluster string }

// Tracker holds the elections. It implements ring.Shared. Safe for
// concurrent use.
type Tracker struct {
	cfg     Config
	now     func() time.Time
	publish func(key string, msg []byte)

	mu        sync.Mutex
	elections map[key]*hapb.Election // values are never modified in place
	clusters  map[string]int         // tracked clusters per tenant

	changes *prometheus.CounterVec
}

// New returns a tracker with no elections. publish gossips one encoded
// election; it may be nil (a single distributor needs no gossip).
func New(cfg Config, publish func(key string, msg []byte), reg prometheus.Registerer) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if publish == nil {
		publish = func(string, []byte) {}
	}
	return &Tracker{
		cfg: cfg, now: time.Now, publish: publish,
		elections: map[key]*hapb.Election{}, clusters: map[string]int{},
		changes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "orrery_ha_tracker_elected_replica_changes_total",
			Help: "Elections of a new replica for an HA cluster (first elections included), per tenant and cluster."}, []string{"tenant", "cluster"}),
	}, nil
}

// Check reports whether a push from replica of cluster is accepted for
// tenant, electing it if no replica is, or if the elected one has been
// silent longer than the failover timeout. A push from another replica
// gets an apierr.Deduplicated error. maxClusters bounds the clusters a
// tenant may have tracked (0: unlimited). The strings may alias a request
// buffer: whatever is kept is copied.
func (t *Tracker) Check(tenant, cluster, replica string, maxClusters int) error {
	now := t.now().UnixMilli()
	k := key{tenant, cluster}
	t.mu.Lock()
	cur := t.elections[k]
	var next *hapb.Election
	if cur != nil && t.expired(cur, now) {
		t.deleteLocked(k)
		cur = nil
	}
	switch {
	case cur == nil:
		if maxClusters > 0 && t.clusters[tenant] >= maxClusters {
			t.sweepLocked(now)
		}
		if maxClusters > 0 && t.clusters[tenant] >= maxClusters {
			t.mu.Unlock()
			return apierr.New(apierr.BadData, "too many HA clusters for this tenant (limit: %d); cluster %q not accepted (err-orrery-too-many-ha-clusters: raise the tenant's ha_max_clusters)", maxClusters, cluster)
		}
		next = t.elect(tenant, cluster, replica, now)
	case cur.GetReplica() == replica:
		if now-cur.GetReceivedMs() < t.cfg.UpdateTimeout.Milliseconds() {
			t.mu.Unlock()
			return nil
		}
		next = proto.CloneOf(cur)
		next.ReceivedMs = now
	case now-cur.GetReceivedMs() > t.cfg.FailoverTimeout.Milliseconds():
		next = t.elect(tenant, cluster, replica, now)
	default:
		t.mu.Unlock()
		return apierr.New(apierr.Deduplicated, "replicas did not match, rejecting sample: replica=%s, elected=%s (cluster %s): the elected replica of this HA pair is being stored",
			replica, cur.GetReplica(), cluster)
	}
	t.storeLocked(k, next)
	t.mu.Unlock()
	if cur == nil || cur.GetReplica() != next.GetReplica() {
		t.changes.WithLabelValues(next.GetTenant(), next.GetCluster()).Inc()
	}
	if b, err := proto.Marshal(&hapb.Elections{Elections: []*hapb.Election{next}}); err == nil {
		t.publish(next.GetTenant()+"/"+next.GetCluster(), b)
	}
	return nil
}

func (t *Tracker) elect(tenant, cluster, replica string, now int64) *hapb.Election {
	return &hapb.Election{
		Tenant: strings.Clone(tenant), Cluster: strings.Clone(cluster), Replica: strings.Clone(replica),
		ElectedMs: now, ReceivedMs: now,
	}
}

func (t *Tracker) expired(e *hapb.Election, now int64) bool {
	return now-e.GetReceivedMs() > forgetAfter.Milliseconds()
}

func (t *Tracker) sweepLocked(now int64) {
	for k, e := range t.elections {
		if t.expired(e, now) {
			t.deleteLocked(k)
		}
	}
}

func (t *Tracker) deleteLocked(k key) {
	delete(t.elections, k)
	if t.clusters[k.tenant]--; t.clusters[k.tenant] <= 0 {
		delete(t.clusters, k.tenant)
	}
}

func (t *Tracker) storeLocked(k key, e *hapb.Election) {
	if _, ok := t.elections[k]; !ok {
		t.clusters[e.GetTenant()]++
	}
	t.elections[key{e.GetTenant(), e.GetCluster()}] = e
}

// compare orders elections of one cluster: the later election wins, the
// replica name breaks a tie between simultaneous elections, and of two
// entries for one election the later push time wins. A total order makes
// the merge a maximum, hence idempotent, commutative and associative.
func compare(a, b *hapb.Election) int {
	if c := cmp.Compare(a.GetElectedMs(), b.GetElectedMs()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetReplica(), b.GetReplica()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetReceivedMs(), b.GetReceivedMs())
}

// Merge takes a peer's elections where they are greater than ours.
func (t *Tracker) Merge(buf []byte) (bool, error) {
	var in hapb.Elections
	if err := proto.Unmarshal(buf, &in); err != nil {
		return false, fmt.Errorf("ha tracker: decode elections: %w", err)
	}
	changed := false
	now := t.now().UnixMilli()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range in.GetElections() {
		if e.GetTenant() == "" || e.GetCluster() == "" || e.GetReplica() == "" || t.expired(e, now) {
			continue
		}
		k := key{e.GetTenant(), e.GetCluster()}
		cur := t.elections[k]
		if cur != nil && compare(e, cur) <= 0 {
			continue
		}
		t.storeLocked(k, e)
		changed = true
		if cur == nil || cur.GetReplica() != e.GetReplica() {
			t.changes.WithLabelValues(e.GetTenant(), e.GetCluster()).Inc()
		}
	}
	return changed, nil
}

// State encodes every election, forgetting expired ones first; the ring
// asks for it at every push/pull, which makes it the tracker's sweep.
func (t *Tracker) State() []byte {
	now := t.now().UnixMilli()
	t.mu.Lock()
	t.sweepLocked(now)
	all := make([]*hapb.Election, 0, len(t.elections))
	for _, e := range t.elections {
		all = append(all, e)
	}
	t.mu.Unlock()
	b, err := proto.Marshal(&hapb.Elections{Elections: all})
	if err != nil {
		return nil
	}
	return b
}

// Elected returns the replica elected for tenant's cluster, or "".
func (t *Tracker) Elected(tenant, cluster string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.elections[key{tenant, cluster}].GetReplica()
}
