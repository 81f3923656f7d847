package ring

import (
	"context"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ringpb"
)

// encryptOverhead is the most that memberlist's encryption adds to a
// packet (its version 0: version byte, nonce, padding, tag).
const encryptOverhead = 1 + 12 + 16 + 16

// memberlistConfig builds memberlist's configuration: LAN defaults, our
// addresses, the cluster label, the keyring, a short push/pull interval,
// and the delegate that carries the ring state.
func (m *Member) memberlistConfig(a gossipAddrs) (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = m.self.ID
	c.BindAddr, c.BindPort = a.bindIP, a.bindPort
	c.AdvertiseAddr, c.AdvertisePort = a.advertiseIP, a.advertisePort
	// memberlist drops every packet and stream whose label differs, so a
	// member of another cluster (a reused pod IP) can neither join nor be
	// joined.
	c.Label = m.cfg.ClusterLabel
	if m.cfg.KeyFile != "" {
		keyring, err := loadKeyring(m.cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		// With a keyring memberlist encrypts everything it sends and, as
		// GossipVerifyIncoming is on, drops whatever it cannot decrypt with
		// one of the keys: plaintext and other keys alike.
		c.Keyring = keyring
		c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	}
	c.PushPullInterval = m.opts.pushPullInterval
	c.GossipInterval = m.opts.gossipInterval
	c.ProbeInterval = m.opts.probeInterval
	c.GossipToTheDeadTime = m.opts.gossipToTheDead
	c.Delegate = (*delegate)(m)
	c.Events = eventLogger{m.logger}
	c.Logger = log.New(memberlistLogWriter{m.logger}, "", 0)
	// The largest user message that fits in one gossip packet after
	// memberlist's compound, label and user-message headers.
	m.maxBroadcast = c.UDPBufferSize - 2 - 3
	if c.Label != "" {
		m.maxBroadcast -= 2 + len(c.Label)
	}
	if c.EncryptionEnabled() {
		m.maxBroadcast -= encryptOverhead
	}
	return c, nil
}

// peers returns the join list without this member's own address.
func (m *Member) peers(ml *memberlist.Memberlist) []string {
	self := ml.LocalNode().Address()
	var out []string
	for _, p := range joinPeers(m.cfg.Join) {
		if p != self {
			out = append(out, p)
		}
	}
	return out
}

// initialJoin tries the peers once, waiting at most until ctx ends or
// initialJoinWait; a join that finishes later still merges its state.
func (m *Member) initialJoin(ctx context.Context, ml *memberlist.Memberlist, peers []string) {
	if len(peers) == 0 {
		return
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := ml.Join(peers)
		done <- result{n, err}
	}()
	timer := time.NewTimer(m.opts.initialJoinWait)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.n == 0 {
			m.logger.Warn("could not join any peer, retrying in the background", "peers", peers, "err", r.err)
			return
		}
		m.numNodes.Store(int64(ml.NumMembers()))
		m.logger.Info("joined cluster", "contacted", r.n, "members", ml.NumMembers(), "err", r.err)
	case <-ctx.Done():
		m.logger.Warn("start-up ended before the join finished; retrying in the background", "err", ctx.Err())
	case <-timer.C:
		m.logger.Warn("join is slow; continuing, retrying in the background", "peers", peers)
	}
}

// joinLoop rejoins the peers whenever this member is alone: the peers may
// not have been up at start, or the whole cluster may have restarted. It
// also rejoins them every rejoinInterval when it is not alone: a seed
// that restarts finds no one to join (its join list names itself), the
// members that join it form an island with it, and the others, not
// alone, would never look for it again, since memberlist's push-pull
// reaches only the members it believes alive.
func (m *Member) joinLoop(ctx context.Context, peers []string) {
	defer m.wg.Done()
	backoff := m.opts.joinBackoffMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		ml := m.ml.Load()
		if ml.NumMembers() > 1 {
			if backoff >= m.opts.rejoinInterval {
				if _, err := ml.Join(peers); err != nil {
					m.logger.Debug("rejoin failed", "peers", peers, "err", err)
				}
			}
			backoff = m.opts.rejoinInterval
			continue
		}
		n, err := ml.Join(peers)
		if n > 0 && ml.NumMembers() > 1 {
			m.logger.Info("joined cluster", "members", ml.NumMembers())
			backoff = m.opts.joinBackoffMax
			continue
		}
		m.logger.Warn("join failed, retrying", "peers", peers, "err", err, "backoff", backoff)
		backoff = min(2*backoff, m.opts.joinBackoffMax)
	}
}

// heartbeatLoop refreshes this instance's entry every HeartbeatPeriod.
func (m *Member) heartbeatLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.HeartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.heartbeat()
		}
	}
}

// heartbeat bumps this instance's heartbeat and version, applies the
// clock-driven expiry to everyone else, and gossips the new entry.
func (m *Member) heartbeat() {
	if ml := m.ml.Load(); ml != nil {
		m.numNodes.Store(int64(ml.NumMembers()))
	}
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseRunning {
		return
	}
	m.expireLocked(now)
	own := cloneInstance(m.own)
	own.HeartbeatMs = now.UnixMilli()
	own.Version++
	m.setOwnLocked(own)
}

// expireLocked forgets instances silent for too long and drops old
// tombstones. Never applied to this instance's own entry.
func (m *Member) expireLocked(now time.Time) {
	for id, in := range m.desc {
		if id == m.self.ID {
			continue
		}
		switch out := m.exp.apply(in, now); {
		case out == nil:
			delete(m.desc, id)
		case out != in:
			m.desc[id] = out
			m.metrics.forgotten.Inc()
			m.logger.Warn("forgot instance without heartbeat", "forgotten", id,
				"last_heartbeat", time.UnixMilli(in.GetHeartbeatMs()))
		}
	}
}

// update is one instance's entry queued for gossip. A newer update for the
// same instance replaces a queued older one.
type update struct {
	id  string
	msg []byte
}

func (u *update) Invalidates(o memberlist.Broadcast) bool {
	ou, ok := o.(*update)
	return ok && ou.id == u.id
}
func (u *update) Name() string    { return u.id }
func (u *update) Message() []byte { return u.msg }
func (u *update) Finished()       {}

// encodeUpdate encodes a Desc holding one instance: the unit of gossip.
func encodeUpdate(in *ringpb.Instance) []byte {
	return encodeDesc(&ringpb.Desc{Instances: map[string]*ringpb.Instance{in.GetId(): in}})
}

func encodeDesc(d *ringpb.Desc) []byte {
	b, err := proto.Marshal(d)
	if err != nil {
		return nil // cannot happen for a valid message; nothing is sent
	}
	return b
}

// broadcastLocked queues in for gossip unless it is too large for a UDP
// packet; then it spreads with the next push/pull instead.
func (m *Member) broadcastLocked(in *ringpb.Instance) {
	msg := encodeUpdate(in)
	if len(msg) == 0 {
		return
	}
	if m.maxBroadcast > 0 && len(msg) > m.maxBroadcast {
		m.metrics.tooLarge.Inc()
		return
	}
	m.queue.QueueBroadcast(&update{id: in.GetId(), msg: msg})
}

// receive decodes a Desc from a peer and merges it.
func (m *Member) receive(buf []byte, kind string, rebroadcast bool) {
	var d ringpb.Desc
	if err := proto.Unmarshal(buf, &d); err != nil {
		m.metrics.decodeErrors.Inc()
		m.logger.Debug("drop undecodable ring state", "kind", kind, "err", err)
		return
	}
	m.metrics.received.WithLabelValues(kind).Inc()
	if len(d.GetInstances()) > 0 {
		m.applyRemote(d.GetInstances(), rebroadcast)
	}
	m.mergeShared(d.GetShared(), rebroadcast)
}

// applyRemote merges entries from a peer. Each entry is normalized and
// expired first (so an expired tombstone cannot come back). This
// instance's own entry is never taken from a peer: if a peer holds a newer
// one (a previous incarnation's tombstone), this instance re-issues its
// entry with a higher version. Entries that changed the local view are
// gossiped on when they came by broadcast, so updates spread epidemically.
func (m *Member) applyRemote(in map[string]*ringpb.Instance, rebroadcast bool) {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	accepted := make(map[string]*ringpb.Instance, len(in))
	var selfNewer *ringpb.Instance
	for key, inst := range in {
		inst, err := normalizeInstance(key, inst)
		if err != nil {
			m.metrics.decodeErrors.Inc()
			m.logger.Debug("drop invalid ring entry", "err", err)
			continue
		}
		if inst = m.exp.apply(inst, now); inst == nil {
			continue
		}
		if key == m.self.ID && m.own != nil {
			if compareInstances(inst, m.own) > 0 && (selfNewer == nil || compareInstances(inst, selfNewer) > 0) {
				selfNewer = inst
			}
			continue
		}
		if key == m.self.ID {
			m.selfSeen = max(m.selfSeen, inst.GetVersion())
		}
		accepted[key] = inst
	}
	changed := mergeInto(m.desc, accepted)
	if rebroadcast {
		for _, c := range changed {
			m.broadcastLocked(c)
		}
	}
	if selfNewer != nil {
		m.takeOverSelfLocked(selfNewer, now)
		return // takeOverSelfLocked published everything
	}
	if len(changed) > 0 {
		m.changedLocked()
	}
}

// takeOverSelfLocked re-issues this instance's entry above a newer one a
// peer holds for the same id.
func (m *Member) takeOverSelfLocked(remote *ringpb.Instance, now time.Time) {
	m.metrics.selfConflicts.Inc()
	m.logger.Warn("a peer holds a newer entry for this instance id; re-issuing ours above it (restart over an old entry, or a duplicate -ring instance id)",
		"remote_version", remote.GetVersion(), "remote_state", remote.GetState(), "local_version", m.own.GetVersion())
	own := cloneInstance(m.own)
	own.Version = remote.GetVersion() + 1
	own.HeartbeatMs = max(own.GetHeartbeatMs(), now.UnixMilli())
	m.setOwnLocked(own)
}

// announceFinal sends this instance's last entry (a LEFT tombstone, or
// the entry a restart keeps) over TCP to a few random peers, which gossip
// it on, then waits for the UDP queue to drain; both bounded by ctx.
// Either alone suffices; together a lost packet does not leave peers
// waiting for the heartbeat timeout.
func (m *Member) announceFinal(ctx context.Context, ml *memberlist.Memberlist, msg []byte) {
	if len(msg) == 0 || ml.NumMembers() <= 1 {
		return
	}
	var peers []*memberlist.Node
	for _, n := range ml.Members() {
		if n.Name != m.self.ID && n.State == memberlist.StateAlive {
			peers = append(peers, n)
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var wg sync.WaitGroup
	for _, n := range peers[:min(3, len(peers))] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ml.SendReliable(n, msg); err != nil {
				m.logger.Debug("send tombstone", "peer", n.Name, "err", err)
			}
		}()
	}
	sent := make(chan struct{})
	go func() { wg.Wait(); close(sent) }()
	select {
	case <-sent:
	case <-ctx.Done():
		return
	}
	for m.queue.NumQueued() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// delegate is the memberlist.Delegate view of a Member, kept off Member's
// exported method set.
type delegate Member

// NodeMeta is empty: the ring state travels in broadcasts and push/pull,
// not in memberlist's size-limited metadata.
func (d *delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg receives a broadcast update. memberlist may reuse buf after
// the call; proto.Unmarshal copies what it keeps.
func (d *delegate) NotifyMsg(buf []byte) { (*Member)(d).receive(buf, "broadcast", true) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState sends the full ring state for push/pull and join.
func (d *delegate) LocalState(bool) []byte {
	d.mu.Lock()
	instances := maps.Clone(d.desc)
	d.mu.Unlock()
	b, err := proto.Marshal(&ringpb.Desc{Instances: instances, Shared: (*Member)(d).sharedStates()})
	if err != nil {
		d.logger.Error("encode ring state", "err", err)
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	(*Member)(d).receive(buf, "push_pull", false)
}

// eventLogger logs memberlist membership changes. memberlist calls it with
// its node lock held, so it must not call back into memberlist.
type eventLogger struct{ logger *slog.Logger }

func (e eventLogger) NotifyJoin(n *memberlist.Node) {
	e.logger.Info("memberlist node joined", "node", n.Name, "addr", n.Address())
}

func (e eventLogger) NotifyLeave(n *memberlist.Node) {
	e.logger.Info("memberlist node left or died", "node", n.Name, "addr", n.Address())
}

func (e eventLogger) NotifyUpdate(n *memberlist.Node) {}
