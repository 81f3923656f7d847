package ring

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orrery/orrery/proto/ringpb"
)

var (
	// ErrEmptyRing means no instance holds tokens: nothing can be placed.
	ErrEmptyRing = errors.New("ring is empty: no instance owns tokens")
	// ErrTooFewHealthy means fewer healthy replicas than a quorum: a write
	// or read must fail (and the client retry) rather than succeed below
	// quorum.
	ErrTooFewHealthy = errors.New("too few healthy instances")
	// ErrChanging means an instance is joining, leaving or unhealthy: an
	// operation that must reach every copy of the data (a deletion) must
	// wait for the ring to settle.
	ErrChanging = errors.New("ring is changing")
)

// ReplicationSet is where one operation goes. Instances are shared with the
// ring and must not be modified. The operation succeeds once all but at
// most MaxErrors of Instances succeed.
type ReplicationSet struct {
	Instances []*ringpb.Instance
	MaxErrors int
	// Incomplete, set by ForQuery only, says why a read may miss data even
	// when every instance answers: token owners were forgotten without
	// leaving, more of them than the error budget covers. Empty otherwise.
	Incomplete string
	// Changing, set by ForQuery only, means a token owner is JOINING or
	// LEAVING: data may be on its way between instances, so a read that
	// did not hear from every instance may be partial.
	Changing bool
}

// Ring is the read side of the ring: a handle on an immutable snapshot that
// the Member replaces on every change. All methods are safe for concurrent
// use and take no lock; a *Ring obtained once stays current.
type Ring struct {
	replicationFactor int
	zoneAwareness     bool
	heartbeatTimeout  time.Duration
	now               func() time.Time

	snap atomic.Pointer[snapshot]
}

// snapshot is one immutable view of the ring.
type snapshot struct {
	// instances are all known entries, LEFT included, sorted by id.
	instances []*ringpb.Instance
	// tokens are the claimed tokens, sorted and unique; owners[i] indexes
	// instances. A token claimed twice belongs to the lower id.
	tokens []uint32
	owners []int32
	// numInRing counts instances with at least one token in tokens.
	numInRing int
	// lost lists, per instance id, the tokens it claims but loses to a
	// lower id; the owner of that id replaces them (token conflicts).
	lost map[string][]uint32
	// owned is each in-ring instance's share of the token space.
	owned map[string]float64
}

func newRing(cfg Config, now func() time.Time) *Ring {
	r := &Ring{
		replicationFactor: cfg.ReplicationFactor,
		zoneAwareness:     cfg.ZoneAwareness,
		heartbeatTimeout:  cfg.HeartbeatTimeout,
		now:               now,
	}
	r.snap.Store(buildSnapshot(nil, nil))
	return r
}

// NewStaticRing returns a Ring over a fixed desc, for tests of packages that
// consume the ring without gossip. Only ReplicationFactor, ZoneAwareness
// and HeartbeatTimeout of cfg are used. The desc must not be modified
// afterwards.
func NewStaticRing(cfg Config, desc *ringpb.Desc) *Ring {
	r := newRing(cfg, time.Now)
	r.snap.Store(buildSnapshot(desc.GetInstances(), nil))
	return r
}

// buildSnapshot builds the view of desc. When ids and the tokens of every
// instance are unchanged since prev (a heartbeat), the token table is
// shared with prev instead of being sorted again.
func buildSnapshot(desc map[string]*ringpb.Instance, prev *snapshot) *snapshot {
	s := &snapshot{instances: make([]*ringpb.Instance, 0, len(desc))}
	for _, in := range desc {
		s.instances = append(s.instances, in)
	}
	slices.SortFunc(s.instances, func(a, b *ringpb.Instance) int { return strings.Compare(a.GetId(), b.GetId()) })
	if prev != nil && sameTokens(prev.instances, s.instances) {
		s.tokens, s.owners, s.numInRing, s.lost, s.owned = prev.tokens, prev.owners, prev.numInRing, prev.lost, prev.owned
		return s
	}
	s.buildTokens()
	return s
}

// sameTokens reports whether a and b (both sorted by id) hold the same
// instances with the same tokens in the ring.
func sameTokens(a, b []*ringpb.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetId() != b[i].GetId() || inRing(a[i]) != inRing(b[i]) ||
			(inRing(a[i]) && !slices.Equal(a[i].GetTokens(), b[i].GetTokens())) {
			return false
		}
	}
	return true
}

// buildTokens fills the token table, resolving duplicate claims in favour
// of the lower id, and the share of the token space per instance.
func (s *snapshot) buildTokens() {
	type claim struct {
		token uint32
		owner int32
	}
	var claims []claim
	for i, in := range s.instances {
		if inRing(in) {
			for _, t := range in.GetTokens() {
				claims = append(claims, claim{t, int32(i)})
			}
		}
	}
	// Instances are sorted by id, so on equal tokens the lower index is
	// the lower id and sorts first.
	slices.SortFunc(claims, func(a, b claim) int {
		if c := cmp.Compare(a.token, b.token); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	s.tokens = make([]uint32, 0, len(claims))
	s.owners = make([]int32, 0, len(claims))
	s.lost = map[string][]uint32{}
	for i, c := range claims {
		if i > 0 && claims[i-1].token == c.token {
			id := s.instances[c.owner].GetId()
			s.lost[id] = append(s.lost[id], c.token)
			continue
		}
		s.tokens = append(s.tokens, c.token)
		s.owners = append(s.owners, c.owner)
	}
	s.owned = map[string]float64{}
	for i, t := range s.tokens {
		// Key k belongs to the first token >= k, so token i owns the
		// range (tokens[i-1], tokens[i]], wrapping around at i == 0.
		size := float64(t - s.tokens[(i+len(s.tokens)-1)%len(s.tokens)])
		if len(s.tokens) == 1 {
			size = 1 << 32
		}
		s.owned[s.instances[s.owners[i]].GetId()] += size / (1 << 32)
	}
	s.numInRing = len(s.owned)
}

func (r *Ring) load() *snapshot { return r.snap.Load() }

func (r *Ring) quorum() int { return r.replicationFactor/2 + 1 }

// IsHealthy reports whether inst has not left and its heartbeat is at most
// HeartbeatTimeout old at now. A heartbeat from the future (clock skew)
// counts as healthy.
func (r *Ring) IsHealthy(inst *ringpb.Instance, now time.Time) bool {
	if inst.GetState() == ringpb.State_LEFT {
		return false
	}
	return now.Sub(time.UnixMilli(inst.GetHeartbeatMs())) <= r.heartbeatTimeout
}

// Get returns where the series with key is written: walking the tokens
// clockwise from key, the first ReplicationFactor distinct instances (in
// distinct zones with zone awareness) that are ACTIVE. JOINING, LEAVING
// and PENDING instances are passed over, so the next instance takes their
// writes. Unhealthy ACTIVE instances keep their place but are left out of
// the set: the write needs a quorum of the healthy rest, else
// ErrTooFewHealthy. MaxErrors is len(Instances) - quorum.
func (r *Ring) Get(key uint32) (ReplicationSet, error) {
	s := r.load()
	if len(s.tokens) == 0 {
		return ReplicationSet{}, ErrEmptyRing
	}
	now := r.now()
	var seenBuf [16]int32
	var zoneBuf [8]string
	seen, zones := seenBuf[:0], zoneBuf[:0]
	picked := make([]*ringpb.Instance, 0, r.replicationFactor)
	start, _ := slices.BinarySearch(s.tokens, key)
	for n := 0; n < len(s.tokens) && len(picked) < r.replicationFactor && len(seen) < s.numInRing; n++ {
		o := s.owners[(start+n)%len(s.tokens)]
		if slices.Contains(seen, o) {
			continue
		}
		seen = append(seen, o)
		in := s.instances[o]
		if in.GetState() != ringpb.State_ACTIVE {
			continue
		}
		if r.zoneAwareness {
			if slices.Contains(zones, in.GetZone()) {
				continue
			}
			zones = append(zones, in.GetZone())
		}
		picked = append(picked, in)
	}
	replicas := len(picked)
	healthy := slices.DeleteFunc(picked, func(in *ringpb.Instance) bool { return !r.IsHealthy(in, now) })
	if len(healthy) < r.quorum() {
		return ReplicationSet{}, fmt.Errorf("%w: key %d: %d of %d replicas found are healthy and ACTIVE, need %d (replication factor %d)",
			ErrTooFewHealthy, key, len(healthy), replicas, r.quorum(), r.replicationFactor)
	}
	return ReplicationSet{Instances: healthy, MaxErrors: len(healthy) - r.quorum()}, nil
}

// ForDeletion returns every instance that may hold data, if every one of
// them (token owners that have not left) is ACTIVE and healthy. A deletion must reach every
// copy: an unhealthy instance would keep its copy, and a join or handover
// in progress moves data between instances as the deletion passes.
func (r *Ring) ForDeletion() ([]*ringpb.Instance, error) {
	s, now := r.load(), r.now()
	var out []*ringpb.Instance
	for _, in := range s.instances {
		if !in.GetOwnsTokens() || in.GetState() == ringpb.State_LEFT {
			continue
		}
		if in.GetState() != ringpb.State_ACTIVE {
			return nil, fmt.Errorf("%w: %s is %s", ErrChanging, in.GetId(), in.GetState())
		}
		if !r.IsHealthy(in, now) {
			return nil, fmt.Errorf("%w: %s is unhealthy (no heartbeat within the timeout)", ErrChanging, in.GetId())
		}
		if inRing(in) {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		return nil, ErrEmptyRing
	}
	return out, nil
}

// ForQuery returns every instance that may hold data: token-owning and
// JOINING, ACTIVE or LEAVING. Unhealthy ones are left out and spend the
// error budget RF - quorum; with zone awareness a whole zone may be left
// out per unit of budget. When unhealthy instances overspend it,
// ErrTooFewHealthy.
//
// A token owner forgotten without leaving (its tombstone is Forgotten)
// spends the budget too, as it did while it was unhealthy: the copies it
// held are gone from every read. Its zone is not left out (its healthy
// members own its ranges now). When forgotten and unhealthy instances
// together overspend the budget, the read goes on with no failure
// tolerated and Incomplete says which data may be missing: auto-forget
// exists so that a dead member stops blocking the cluster, and the read
// must then say what it cannot see rather than fail for ever.
func (r *Ring) ForQuery() (ReplicationSet, error) {
	s, now := r.load(), r.now()
	var healthy []*ringpb.Instance
	var unhealthy int
	var forgotten []string
	var changing bool
	unhealthyZones, lostZones := map[string]bool{}, map[string]bool{}
	for _, in := range s.instances {
		st := in.GetState()
		if st == ringpb.State_LEFT && in.GetForgotten() {
			forgotten = append(forgotten, in.GetId())
			lostZones[in.GetZone()] = true
			continue
		}
		if !inRing(in) || (st != ringpb.State_JOINING && st != ringpb.State_ACTIVE && st != ringpb.State_LEAVING) {
			continue
		}
		changing = changing || st != ringpb.State_ACTIVE
		if !r.IsHealthy(in, now) {
			unhealthy++
			unhealthyZones[in.GetZone()] = true
			lostZones[in.GetZone()] = true
			continue
		}
		healthy = append(healthy, in)
	}
	if len(healthy) == 0 && unhealthy == 0 {
		return ReplicationSet{}, ErrEmptyRing
	}
	budget := r.replicationFactor - r.quorum()
	failed, lost := unhealthy, unhealthy+len(forgotten)
	if r.zoneAwareness {
		failed, lost = len(unhealthyZones), len(lostZones)
		// A zone with any unhealthy instance is left out entirely: the
		// other zones hold a replica of everything it holds.
		healthy = slices.DeleteFunc(healthy, func(in *ringpb.Instance) bool { return unhealthyZones[in.GetZone()] })
	}
	if failed > budget || len(healthy) == 0 {
		return ReplicationSet{}, fmt.Errorf("%w: %d unhealthy instances in %d zones, at most %d tolerated at replication factor %d",
			ErrTooFewHealthy, unhealthy, len(unhealthyZones), budget, r.replicationFactor)
	}
	rs := ReplicationSet{Instances: healthy, MaxErrors: budget - lost, Changing: changing}
	if lost > budget {
		rs.MaxErrors = 0
		rs.Incomplete = fmt.Sprintf("%d ingesters are missing from reads, more than the %d tolerated at replication factor %d: %s forgotten without leaving the ring, %d unhealthy; data only they held is missing; once it is restored or known lost, forget them (POST /ring/forget?id=…)",
			lost, budget, r.replicationFactor, strings.Join(forgotten, ", "), unhealthy)
	}
	return rs, nil
}

// Instances returns every known instance, LEFT tombstones included, sorted
// by id. The caller owns the slice but must not modify the instances.
func (r *Ring) Instances() []*ringpb.Instance {
	return slices.Clone(r.load().instances)
}

// OwnedFraction returns each token-owning instance's share of the token
// space, in [0, 1]; the shares sum to 1 unless the ring is empty. The
// caller owns the map.
func (r *Ring) OwnedFraction() map[string]float64 {
	s := r.load()
	out := make(map[string]float64, len(s.owned))
	for id, f := range s.owned {
		out[id] = f
	}
	return out
}

// OwnersDigest is a hash of the token table as lookups use it: every token
// with the id that owns it, after conflicts are resolved. Two members with
// the same digest compute the same owners for every key.
func (r *Ring) OwnersDigest() string {
	s := r.load()
	h := fnv.New64a()
	var buf [4]byte
	for i, t := range s.tokens {
		binary.BigEndian.PutUint32(buf[:], t)
		_, _ = h.Write(buf[:])
		_, _ = io.WriteString(h, s.instances[s.owners[i]].GetId())
		_, _ = h.Write([]byte{0})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// tokensOwned returns how many tokens id holds in the lookup table, that is
// after conflicts are resolved.
func (s *snapshot) tokensOwned(id string) int {
	i := sort.Search(len(s.instances), func(i int) bool { return s.instances[i].GetId() >= id })
	if i == len(s.instances) || s.instances[i].GetId() != id {
		return 0
	}
	return len(s.instances[i].GetTokens()) - len(s.lost[id])
}
