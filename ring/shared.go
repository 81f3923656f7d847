package ring

import (
	"errors"

	"github.com/orrery/orrery/proto/ringpb"
)

// Shared is state another package gossips over the ring's memberlist
// rather than running a second one: the HA tracker's elections, for
// instance. The ring moves its bytes and never interprets them. Like the
// ring's own state it must be a join-semilattice: merging is idempotent,
// commutative and associative, so any order of broadcasts and push/pull
// exchanges converges.
type Shared interface {
	// Merge merges a peer's encoded entries into the local state and
	// reports whether anything changed; a broadcast that changed
	// something is gossiped on.
	Merge(buf []byte) (changed bool, err error)
	// State encodes the whole local state, sent on push/pull and join.
	State() []byte
}

// Share registers s under name. It must be called before Start.
func (m *Member) Share(name string, s Shared) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseNew {
		return errors.New("ring member: Share after Start")
	}
	if m.shared == nil {
		m.shared = map[string]Shared{}
	}
	if _, dup := m.shared[name]; dup {
		return errors.New("ring member: shared state " + name + " registered twice")
	}
	m.shared[name] = s
	return nil
}

// Publish gossips msg, an encoding of some of name's entries. key
// identifies what msg updates: a queued broadcast with the same name and
// key is superseded by the newer one.
func (m *Member) Publish(name, key string, msg []byte) {
	m.publishShared(name, "shared/"+name+"/"+key, msg)
}

func (m *Member) publishShared(name, id string, msg []byte) {
	b := encodeDesc(&ringpb.Desc{Shared: map[string][]byte{name: msg}})
	if len(b) == 0 {
		return
	}
	if m.maxBroadcast > 0 && len(b) > m.maxBroadcast {
		m.metrics.tooLarge.Inc()
		return
	}
	m.queue.QueueBroadcast(&update{id: id, msg: b})
}

// mergeShared hands each shared state its part of a peer's message. A
// broadcast that changed local state is gossiped on, so it spreads like
// ring updates do. Unknown names are ignored: a newer peer may share more.
func (m *Member) mergeShared(in map[string][]byte, rebroadcast bool) {
	for name, buf := range in {
		s := m.shared[name]
		if s == nil {
			continue
		}
		changed, err := s.Merge(buf)
		if err != nil {
			m.metrics.decodeErrors.Inc()
			m.logger.Debug("drop undecodable shared state", "name", name, "err", err)
			continue
		}
		if changed && rebroadcast {
			m.publishShared(name, "shared/"+name+"/"+string(buf), buf)
		}
	}
}

// sharedStates encodes every shared state for push/pull.
func (m *Member) sharedStates() map[string][]byte {
	if len(m.shared) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(m.shared))
	for name, s := range m.shared {
		out[name] = s.State()
	}
	return out
}
