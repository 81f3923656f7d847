package ring

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ringpb"
)

// The gossiped state is a map from instance id to *ringpb.Instance. Per id
// the merge keeps the greater entry under the total order compareInstances;
// a merge of two maps is therefore a per-key maximum, which is idempotent,
// commutative and associative (DESIGN.md, desc_test.go).
//
// Instances stored in a map are never modified after they are stored:
// every change builds a new *ringpb.Instance and replaces the pointer, so
// snapshots can share them without copying.

// compareInstances is the total order behind the merge: version first (the
// owner bumps it on every change), then heartbeat, then the later lifecycle
// state, and finally the deterministic encoding so that two different
// entries are never "equal". It returns -1, 0 or +1.
func compareInstances(a, b *ringpb.Instance) int {
	if c := cmp.Compare(a.GetVersion(), b.GetVersion()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetHeartbeatMs(), b.GetHeartbeatMs()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GetState(), b.GetState()); c != 0 {
		return c
	}
	if proto.Equal(a, b) {
		return 0
	}
	return bytes.Compare(encodeInstance(a), encodeInstance(b))
}

// encodeInstance is the deterministic encoding used only to break ties
// between two different entries with the same version, heartbeat and state.
func encodeInstance(in *ringpb.Instance) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	if err != nil {
		// Marshal of a valid generated message cannot fail; if it ever
		// does, fall back to the text form, which is still deterministic.
		return []byte(in.String())
	}
	return b
}

// mergeInto merges src into dst (per id, the greater entry wins) and
// returns the entries of src that replaced or added to dst. It is the
// pure lattice merge: no clock, no "self" rule; Member layers those on top.
func mergeInto(dst, src map[string]*ringpb.Instance) []*ringpb.Instance {
	var changed []*ringpb.Instance
	for id, in := range src {
		if cur, ok := dst[id]; ok && compareInstances(in, cur) <= 0 {
			continue
		}
		dst[id] = in
		changed = append(changed, in)
	}
	return changed
}

// mergeDescs returns the merge of a and b without modifying either.
func mergeDescs(a, b *ringpb.Desc) *ringpb.Desc {
	out := &ringpb.Desc{Instances: make(map[string]*ringpb.Instance, len(a.GetInstances()))}
	mergeInto(out.Instances, a.GetInstances())
	mergeInto(out.Instances, b.GetInstances())
	return out
}

// normalizeInstance checks an entry received from a peer and puts it in
// canonical form (tokens sorted and unique, none on a tombstone), so that
// equal content always compares equal. The key it was stored under must
// match its id: anything else is a corrupt or hostile message.
func normalizeInstance(key string, in *ringpb.Instance) (*ringpb.Instance, error) {
	if in == nil {
		return nil, fmt.Errorf("instance %q: empty entry", key)
	}
	if in.GetId() == "" || in.GetId() != key {
		return nil, fmt.Errorf("instance stored under %q has id %q", key, in.GetId())
	}
	if _, ok := ringpb.State_name[int32(in.GetState())]; !ok {
		return nil, fmt.Errorf("instance %q: unknown state %d", key, in.GetState())
	}
	if in.GetState() == ringpb.State_LEFT {
		in.Tokens = nil
	} else {
		in.Tokens = sortedUnique(in.Tokens)
	}
	return in, nil
}

// expiry holds the two clock-driven rules applied outside the merge. Both
// depend only on an entry's own fields and the clock, so every member takes
// the same decision about the same entry and produces identical bytes.
type expiry struct {
	// forgetAfter: a non-LEFT entry whose heartbeat is older is replaced by
	// its tombstone (auto-forget of dead members).
	forgetAfter time.Duration
	// tombstoneTTL: a LEFT entry whose heartbeat is older is dropped,
	// unless it is the forgotten tombstone of a token owner: that one stays
	// until the instance returns or an operator forgets it (Forget), so
	// that reads keep saying they may be incomplete.
	tombstoneTTL time.Duration
}

// apply returns the entry to keep for in at now: in itself, its tombstone,
// or nil when the entry must be dropped. A dropped tombstone is refused
// when it comes back from a peer that has not dropped it yet, so it cannot
// resurrect.
func (e expiry) apply(in *ringpb.Instance, now time.Time) *ringpb.Instance {
	nowMs := now.UnixMilli()
	if in.GetState() != ringpb.State_LEFT && nowMs-in.GetHeartbeatMs() > e.forgetAfter.Milliseconds() {
		in = forgottenTombstone(in, e.forgetAfter)
	}
	if in.GetState() == ringpb.State_LEFT && !in.GetForgotten() && nowMs-in.GetHeartbeatMs() > e.tombstoneTTL.Milliseconds() {
		return nil
	}
	return in
}

// forgottenTombstone is the tombstone any member writes for an instance
// silent for forgetAfter. Its heartbeat is the moment the instance became
// forgettable, not "now", so that all members write the same bytes and the
// tombstone's own expiry is the same everywhere. It is marked Forgotten
// when the instance held tokens: it left without handing its data over.
func forgottenTombstone(in *ringpb.Instance, forgetAfter time.Duration) *ringpb.Instance {
	return &ringpb.Instance{
		Id:           in.GetId(),
		Addr:         in.GetAddr(),
		Zone:         in.GetZone(),
		State:        ringpb.State_LEFT,
		HeartbeatMs:  in.GetHeartbeatMs() + forgetAfter.Milliseconds(),
		RegisteredMs: in.GetRegisteredMs(),
		Version:      in.GetVersion() + 1,
		OwnsTokens:   in.GetOwnsTokens(),
		Forgotten:    inRing(in),
	}
}

// forgetTombstone is the tombstone an operator's Forget writes over a
// forgotten or unhealthy instance at now: a plain LEFT entry, which expires
// as any other. Its version is two above in's: over a live entry, the
// auto-forget tombstone that other members may derive from that entry
// later takes version + 1, and must not win over the operator's word.
func forgetTombstone(in *ringpb.Instance, now time.Time) *ringpb.Instance {
	return &ringpb.Instance{
		Id:           in.GetId(),
		Addr:         in.GetAddr(),
		Zone:         in.GetZone(),
		State:        ringpb.State_LEFT,
		HeartbeatMs:  now.UnixMilli(),
		RegisteredMs: in.GetRegisteredMs(),
		Version:      in.GetVersion() + 2,
		OwnsTokens:   in.GetOwnsTokens(),
	}
}

// cloneInstance returns a deep copy that the caller may modify.
func cloneInstance(in *ringpb.Instance) *ringpb.Instance {
	return proto.Clone(in).(*ringpb.Instance)
}

// sortedUnique sorts tokens in place and removes duplicates.
func sortedUnique(tokens []uint32) []uint32 {
	slices.Sort(tokens)
	return slices.Compact(tokens)
}

// inRing reports whether an instance's tokens take part in lookups: it
// claims tokens and has not left.
func inRing(in *ringpb.Instance) bool {
	return in.GetOwnsTokens() && in.GetState() != ringpb.State_LEFT && len(in.GetTokens()) > 0
}
