package ring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orrery/orrery/lifecycle"
	"github.com/orrery/orrery/proto/ringpb"
)

// Self describes the instance a Member registers.
type Self struct {
	// ID names the instance in the ring and in memberlist; it must be
	// unique in the cluster and stable across restarts.
	ID string
	// Addr is the gRPC address other components dial.
	Addr string
	// HTTPAddr is the HTTP address (host:port) other components call.
	HTTPAddr string
	// OwnsTokens is true for instances that hold series (ingesters).
	OwnsTokens bool
	// Components are what this process runs ("distributor", "ingester",
	// "querier"), so that peers can count each other by role.
	Components []string
	// TokensFile is where the tokens persist across restarts; "" means
	// they are not persisted (a restart then draws new tokens, unless the
	// ring still holds this instance's previous entry).
	TokensFile string
}

type phase int

const (
	phaseNew phase = iota
	phaseStarting
	phaseRunning
	phaseStopping
	phaseStopped
)

// options are the knobs that are not flags: memberlist timings, and the
// clock and randomness that tests replace.
type options struct {
	pushPullInterval time.Duration
	gossipInterval   time.Duration
	probeInterval    time.Duration
	// leaveTimeout caps how long Stop waits for the LEFT tombstone to
	// spread, whatever the caller's context allows.
	leaveTimeout time.Duration
	// initialJoinWait caps how long Start waits for the first join.
	initialJoinWait time.Duration
	joinBackoffMin  time.Duration
	joinBackoffMax  time.Duration
	// rejoinInterval is how often a member that is not alone joins its
	// peers again, which heals an island a restarted seed formed.
	rejoinInterval time.Duration
	// gossipToTheDead is how long memberlist keeps gossiping to a member
	// it marked dead (its LAN default), which lets one that restarted
	// quickly refute its death.
	gossipToTheDead time.Duration
	now             func() time.Time
	rand            func() uint32
}

func defaultOptions() options {
	return options{
		// Small clusters converge in seconds even when a broadcast is
		// lost or too large for UDP.
		pushPullInterval: 5 * time.Second,
		gossipInterval:   200 * time.Millisecond,
		probeInterval:    time.Second,
		leaveTimeout:     2 * time.Second,
		initialJoinWait:  10 * time.Second,
		joinBackoffMin:   time.Second,
		joinBackoffMax:   30 * time.Second,
		rejoinInterval:   15 * time.Second,
		gossipToTheDead:  30 * time.Second,
		now:              time.Now,
		rand:             rand.Uint32,
	}
}

var (
	_ lifecycle.Component      = (*Member)(nil)
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = eventLogger{}
)

// Member is this process's membership in the ring: a memberlist, this
// instance's entry with its heartbeat, and the merged view of everyone
// else's. It implements lifecycle.Component. All methods are safe for
// concurrent use.
type Member struct {
	cfg     Config
	self    Self
	logger  *slog.Logger
	opts    options
	exp     expiry
	ring    *Ring
	metrics *metrics
	queue   *memberlist.TransmitLimitedQueue
	// numNodes feeds the broadcast queue's retransmit count; it is
	// refreshed by the heartbeat loop rather than read from memberlist
	// inside queue calls, which run under our lock.
	numNodes     atomic.Int64
	ml           atomic.Pointer[memberlist.Memberlist]
	maxBroadcast int
	// saver persists replaced tokens; nil without a TokensFile.
	saver *tokenSaver

	mu       sync.Mutex
	desc     map[string]*ringpb.Instance // values are never modified in place
	own      *ringpb.Instance            // this instance's entry; nil until registered
	selfSeen uint64                      // highest version of our id seen before registering
	phase    phase
	// leave makes Stop of a token owner replace its entry with a LEFT
	// tombstone: only once its series are safe elsewhere (LeaveOnStop).
	leave bool
	// keepEntry makes Stop leave this instance's entry in the ring, tokens
	// and all, instead of replacing it with a LEFT tombstone: a restart.
	keepEntry bool

	subsMu sync.Mutex
	subs   []chan struct{}

	// shared is state other packages gossip with the ring's, by name;
	// registered before Start, read-only afterwards.
	shared map[string]Shared

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMember checks cfg and self and prepares a Member; nothing listens
// until Start. reg may be nil; logger may be nil (logs are dropped).
func NewMember(cfg Config, self Self, reg prometheus.Registerer, logger *slog.Logger) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ring config: %w", err)
	}
	if self.ID == "" {
		return nil, errors.New("ring member: empty instance id")
	}
	if self.OwnsTokens && cfg.ZoneAwareness && cfg.Zone == "" {
		return nil, errors.New("ring member: -instance.zone is required for a token-owning instance when -ring.zone-awareness-enabled is set")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Member{
		cfg:    cfg,
		self:   self,
		logger: logger,
		opts:   defaultOptions(),
		exp:    expiry{forgetAfter: 10 * cfg.HeartbeatTimeout, tombstoneTTL: 10 * cfg.HeartbeatTimeout},
		desc:   map[string]*ringpb.Instance{},
	}
	m.ring = newRing(cfg, func() time.Time { return m.opts.now() })
	if self.TokensFile != "" {
		m.saver = newTokenSaver(self.TokensFile, m.logger)
	}
	m.numNodes.Store(1)
	m.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(m.numNodes.Load()) },
		RetransmitMult: memberlist.DefaultLANConfig().RetransmitMult,
	}
	var err error
	if m.metrics, err = newMetrics(reg, m); err != nil {
		return nil, err
	}
	return m, nil
}

// Ring returns the read-side view. The same *Ring is returned every time
// and always reflects the latest merged state.
func (m *Member) Ring() *Ring { return m.ring }

// GossipAddr returns the host:port peers use to reach this member's
// memberlist (with BindAddr port 0, the port the kernel chose), or "" before
// Start.
func (m *Member) GossipAddr() string {
	if ml := m.ml.Load(); ml != nil {
		return ml.LocalNode().Address()
	}
	return ""
}

// Subscribe returns a channel that receives a value after the ring changed
// (heartbeats included). It is buffered with room for one value and never
// blocks the sender: several changes may arrive as one notification, so a
// subscriber rereads Ring() when woken. The channel lives as long as the
// Member and is never closed.
func (m *Member) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	m.subs = append(m.subs, ch)
	return ch
}

func (m *Member) notify() {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Start creates the memberlist, joins the peers (a failed join is logged
// and retried in the background), registers this instance as ACTIVE with
// its tokens, and starts the heartbeat. ctx bounds the start-up only.
func (m *Member) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.phase != phaseNew {
		m.mu.Unlock()
		return errors.New("ring member: already started")
	}
	m.phase = phaseStarting
	m.mu.Unlock()

	addrs, err := resolveGossipAddrs(ctx, m.cfg, m.logger)
	if err != nil {
		return fmt.Errorf("ring member: %w", err)
	}
	mlCfg, err := m.memberlistConfig(addrs)
	if err != nil {
		return fmt.Errorf("ring member: %w", err)
	}
	ml, err := memberlist.Create(mlCfg)
	if err != nil {
		return fmt.Errorf("ring member: create memberlist on %s: %w", m.cfg.BindAddr, err)
	}
	m.ml.Store(ml)
	peers := m.peers(ml)
	m.initialJoin(ctx, ml, peers)
	if err := m.register(); err != nil {
		m.ml.Store(nil)
		return errors.Join(fmt.Errorf("ring member: register %s: %w", m.self.ID, err), ml.Shutdown())
	}
	// The background work lives until Stop, not until ctx ends.
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(1)
	go m.heartbeatLoop(runCtx)
	if len(peers) > 0 {
		m.wg.Add(1)
		go m.joinLoop(runCtx, peers)
	}
	if m.saver != nil {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.saver.run(runCtx) }()
	}
	m.mu.Lock()
	m.phase = phaseRunning
	m.mu.Unlock()
	m.logger.Info("ring member started", "gossip_addr", m.GossipAddr(), "members", ml.NumMembers())
	return nil
}

// register claims tokens and puts this instance in the ring as ACTIVE,
// with a version above any entry for its id seen so far (a previous
// incarnation's tombstone must not win over the new one).
func (m *Member) register() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var tokens []uint32
	if m.self.OwnsTokens {
		var err error
		if tokens, err = m.claimTokensLocked(); err != nil {
			return err
		}
	}
	version := m.selfSeen
	if prev := m.desc[m.self.ID]; prev != nil && prev.GetVersion() > version {
		version = prev.GetVersion()
	}
	now := m.opts.now().UnixMilli()
	m.setOwnLocked(&ringpb.Instance{
		Id:           m.self.ID,
		Addr:         m.self.Addr,
		HttpAddr:     m.self.HTTPAddr,
		Zone:         m.cfg.Zone,
		State:        ringpb.State_ACTIVE,
		Tokens:       tokens,
		HeartbeatMs:  now,
		RegisteredMs: now,
		Version:      version + 1,
		OwnsTokens:   m.self.OwnsTokens,
		Components:   slices.Sorted(slices.Values(m.self.Components)),
	})
	return nil
}

// claimTokensLocked returns this instance's tokens: those persisted in
// TokensFile, else those of its previous entry still in the ring, topped up
// with fresh random tokens no other instance holds, and persists them.
func (m *Member) claimTokensLocked() ([]uint32, error) {
	var tokens []uint32
	source := "generated"
	if m.self.TokensFile != "" {
		loaded, err := loadTokens(m.self.TokensFile)
		if err != nil {
			return nil, err
		}
		if len(loaded) > 0 {
			tokens, source = loaded, "file"
		}
	}
	if prev := m.desc[m.self.ID]; tokens == nil && prev != nil && inRing(prev) {
		tokens, source = slices.Clone(prev.GetTokens()), "ring"
	}
	fromFile := source == "file"
	if missing := m.cfg.NumTokens - len(tokens); missing > 0 {
		taken := m.takenTokensLocked()
		for _, t := range tokens {
			taken[t] = struct{}{}
		}
		tokens = sortedUnique(append(tokens, chooseTokens(missing, m.othersTokensLocked(), taken, m.opts.rand)...))
		fromFile = false
	}
	if m.self.TokensFile != "" && !fromFile {
		if err := saveTokens(m.self.TokensFile, tokens); err != nil {
			return nil, err
		}
	}
	m.logger.Info("claimed tokens", "tokens", len(tokens), "source", source)
	return tokens, nil
}

// takenTokensLocked returns the tokens other instances hold.
func (m *Member) takenTokensLocked() map[uint32]struct{} {
	taken := map[uint32]struct{}{}
	for id, in := range m.desc {
		if id != m.self.ID && inRing(in) {
			for _, t := range in.GetTokens() {
				taken[t] = struct{}{}
			}
		}
	}
	return taken
}

// othersTokensLocked returns the tokens of every other token owner in the
// ring. The caller holds m.mu.
func (m *Member) othersTokensLocked() map[string][]uint32 {
	out := map[string][]uint32{}
	for id, inst := range m.desc {
		if id != m.self.ID && inst.GetOwnsTokens() && inRing(inst) {
			out[id] = inst.GetTokens()
		}
	}
	return out
}

// SetState changes this instance's state (for example LEAVING before a
// handover) and gossips it. LEFT is reserved for Stop.
func (m *Member) SetState(s ringpb.State) error {
	if _, ok := ringpb.State_name[int32(s)]; !ok || s == ringpb.State_LEFT {
		return fmt.Errorf("ring member: cannot set state %v (LEFT is set by Stop)", s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseRunning || m.own == nil {
		return fmt.Errorf("ring member: set state %v: member is not running", s)
	}
	if m.own.GetState() == s {
		return nil
	}
	own := cloneInstance(m.own)
	own.State = s
	own.Version++
	own.HeartbeatMs = m.opts.now().UnixMilli()
	m.setOwnLocked(own)
	m.logger.Info("state changed", "state", s)
	return nil
}

// KeepEntryOnStop makes Stop leave this instance in the ring, in whatever
// state it was last given, with its tokens, instead of marking it LEFT: for
// a restart that comes back on the same data dir and tokens. Peers see the
// entry's heartbeat stop; after -ring.heartbeat-timeout it is unhealthy,
// and it is forgotten if the instance stays away ten times that long.
func (m *Member) KeepEntryOnStop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keepEntry = true
}

// LeaveOnStop lets Stop of a token-owning instance mark it LEFT and drop
// its tokens: call it once its series are held elsewhere (a handover
// succeeded). Without it a token owner's entry stays, whatever stopped the
// process (a failed start rolled back, a failed handover, a restart), so
// that queriers keep counting it rather than silently missing its data.
// Instances without tokens always leave.
func (m *Member) LeaveOnStop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leave = true
}

// ErrNotForgettable means Forget was asked to remove an instance that is
// this one, healthy, or unknown.
var ErrNotForgettable = errors.New("instance cannot be forgotten")

// Forget removes instance id from the ring on an operator's word: its
// forgotten tombstone (or, for an instance that is unhealthy but not yet
// forgotten, its entry) is replaced by a plain LEFT tombstone above its
// version, gossiped to everyone, which expires as any other. Reads then
// stop saying they may be incomplete because of it. Only this instance's
// own entry and healthy instances are refused: an operator forgets a
// member once its data is known to be restored elsewhere or lost.
func (m *Member) Forget(id string) error {
	now := m.opts.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseRunning {
		return fmt.Errorf("ring member: forget %q: member is not running", id)
	}
	in, ok := m.desc[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q is not in the ring", ErrNotForgettable, id)
	case id == m.self.ID:
		return fmt.Errorf("%w: %q is this instance", ErrNotForgettable, id)
	case in.GetState() == ringpb.State_LEFT && !in.GetForgotten():
		return nil
	case in.GetState() != ringpb.State_LEFT && m.ring.IsHealthy(in, now):
		return fmt.Errorf("%w: %q is healthy", ErrNotForgettable, id)
	}
	tomb := forgetTombstone(in, now)
	m.desc[id] = tomb
	m.broadcastLocked(tomb)
	m.changedLocked()
	m.logger.Warn("forgot instance on request", "forgotten", id, "state", in.GetState(), "was_forgotten", in.GetForgotten())
	return nil
}

// setOwnLocked stores a new version of this instance's entry, queues it
// for gossip and publishes the change.
func (m *Member) setOwnLocked(own *ringpb.Instance) {
	m.own = own
	m.desc[own.GetId()] = own
	m.broadcastLocked(own)
	m.changedLocked()
}

// changedLocked rebuilds the read-side snapshot after any change, resolves
// a token conflict this instance lost, updates the gauges and wakes the
// subscribers.
func (m *Member) changedLocked() {
	s := buildSnapshot(m.desc, m.ring.load())
	m.ring.snap.Store(s)
	if lost := s.lost[m.self.ID]; len(lost) > 0 && m.own != nil && inRing(m.own) {
		// replaceTokensLocked stores new tokens and calls back here; the
		// new tokens avoid every claimed token, so this recurses once.
		m.replaceTokensLocked(lost, s)
		return
	}
	m.metrics.observe(s, m.ring, m.self.ID, m.opts.now())
	m.notify()
}

// replaceTokensLocked gives up the tokens a lower id also claims (the
// lookup already gives them to that id) and draws fresh ones, so that this
// instance keeps NumTokens and every member sees the conflict end the same
// way.
func (m *Member) replaceTokensLocked(lost []uint32, s *snapshot) {
	taken := make(map[uint32]struct{}, len(s.tokens)+len(m.own.GetTokens()))
	for _, t := range s.tokens {
		taken[t] = struct{}{}
	}
	for _, t := range m.own.GetTokens() {
		taken[t] = struct{}{}
	}
	own := cloneInstance(m.own)
	own.Tokens = slices.DeleteFunc(own.Tokens, func(t uint32) bool { _, ok := slices.BinarySearch(lost, t); return ok })
	own.Tokens = sortedUnique(append(own.Tokens, generateTokens(len(lost), taken, m.opts.rand)...))
	own.Version++
	own.HeartbeatMs = m.opts.now().UnixMilli()
	m.metrics.tokenConflicts.Add(float64(len(lost)))
	m.logger.Warn("tokens also claimed by a lower instance id; replaced them", "tokens", len(lost))
	if m.saver != nil {
		m.saver.save(own.Tokens)
	}
	m.setOwnLocked(own)
}

// Stop marks this instance LEFT (a token owner only after LeaveOnStop),
// spreads the tombstone (bounded by ctx and a couple of seconds), then
// leaves and shuts down the memberlist.
func (m *Member) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.phase != phaseRunning {
		m.mu.Unlock()
		return fmt.Errorf("ring member: stop: member is not running")
	}
	m.phase = phaseStopping
	// final is what peers must know before this process goes: the LEFT
	// tombstone, or the entry kept for a restart, whose state (LEAVING)
	// was gossiped moments ago and may still sit in the queue.
	var final *ringpb.Instance
	if !m.keepEntry && (!m.self.OwnsTokens || m.leave) {
		final = cloneInstance(m.own)
		final.State = ringpb.State_LEFT
		final.Tokens = nil
		final.Version++
		final.HeartbeatMs = m.opts.now().UnixMilli()
		m.setOwnLocked(final)
	} else if m.own != nil {
		final = cloneInstance(m.own)
	}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, m.opts.leaveTimeout)
	defer cancel()
	m.cancel()
	// The join loop may sit in a join attempt for memberlist's TCP
	// timeout; Shutdown below makes it fail, so do not wait past ctx.
	loopsDone := make(chan struct{})
	go func() { m.wg.Wait(); close(loopsDone) }()
	select {
	case <-loopsDone:
	case <-ctx.Done():
	}
	ml := m.ml.Load()
	if final != nil {
		m.announceFinal(ctx, ml, encodeUpdate(final))
	}
	leaveTimeout := time.Until(deadlineOf(ctx))
	if err := ml.Leave(max(leaveTimeout, 10*time.Millisecond)); err != nil {
		// Peers notice the missing probes instead; the ring already has
		// the tombstone, so this only delays memberlist's own view.
		m.logger.Warn("memberlist leave", "err", err)
	}
	err := ml.Shutdown()
	m.mu.Lock()
	m.phase = phaseStopped
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("ring member: shut down memberlist: %w", err)
	}
	m.logger.Info("ring member stopped")
	return nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline() // always set: Stop derives ctx with a timeout
	return d
}
