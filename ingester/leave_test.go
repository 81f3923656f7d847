package ingester

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/internal/scenario"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
)

// leaveRing is the ring a leaving ingester ("from") and its one peer
// ("to") see: its own entry changes with SetState, as the ring member's
// does, and the script changes the peer's. It implements both Membership
// (what the Leaver records) and Owners (what the handover reads).
type leaveRing struct {
	mu      sync.Mutex
	members map[string]member
	ring    *ring.Ring
	events  []string
	// healAfter makes the peer healthy at that many retry waits from now
	// (0: never).
	healAfter int
	// pushing makes the next stop run beside a distributor that keeps
	// pushing to "from" until 50ms after it saw it LEAVING.
	pushing bool
}

func (r *leaveRing) rebuild() { r.ring = testRing(1, r.members) }

func (r *leaveRing) set(id string, f func(*member)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[id]
	f(&m)
	r.members[id] = m
	r.rebuild()
}

func (r *leaveRing) event(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *leaveRing) SetState(s ringpb.State) error {
	r.set("from", func(m *member) { m.state = s })
	r.event("state %s", s)
	return nil
}
func (r *leaveRing) KeepEntryOnStop() { r.event("stop keeps the entry") }
func (r *leaveRing) LeaveOnStop()     { r.event("stop marks it LEFT") }

func (r *leaveRing) current() *ring.Ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ring
}
func (r *leaveRing) Get(key uint32) (ring.ReplicationSet, error) { return r.current().Get(key) }
func (r *leaveRing) Instances() []*ringpb.Instance               { return r.current().Instances() }
func (r *leaveRing) IsHealthy(inst *ringpb.Instance, now time.Time) bool {
	return r.current().IsHealthy(inst, now)
}

// TestLeaveScenarios runs the scripts in testdata/leave: an ingester
// ("from") stops beside one peer ("to"), both real ingesters, through the
// Leaver's every path: a restart, a leave with handover, a handover that
// fails and is retried, one that fails until the deadline, and a leave
// with no one to hand over to. Commands (go test -run TestLeaveScenarios
// -update rewrites the outputs):
//
//	push <from|to> <tenant> <series> <first> <n>  samples at seconds first.. with value = second
//	peer <healthy|unhealthy|gone|joins-later>     the peer's ring entry: heartbeat fresh, stale, none, or none until 300ms from now
//	heal-after <n>                                the peer turns healthy at the n-th retry wait
//	pushing                                       the next stop runs beside a distributor pushing to "from" until 50ms after it sees it LEAVING
//	stop <handover|restart|requested> [deadline]  run the Leaver's Stop (default deadline 5s); prints what it did
//	count <from|to> <tenant> <series>             the samples an ingester holds of a series
func TestLeaveScenarios(t *testing.T) {
	scenario.Run(t, "testdata/leave/*.txt", func(t *testing.T) func([]string) string {
		ings := map[string]*testIngester{
			"from": newTestIngester(t, t.TempDir(), testConfig()),
			"to":   newTestIngester(t, t.TempDir(), testConfig()),
		}
		t.Cleanup(func() {
			for _, ti := range ings {
				ti.stop(t)
			}
		})
		r := &leaveRing{members: map[string]member{
			"from": {addr: ings["from"].addr, state: ringpb.State_ACTIVE, tokens: []uint32{1<<31 + 1}},
			"to":   {addr: ings["to"].addr, state: ringpb.State_ACTIVE, tokens: []uint32{1 << 31}},
		}}
		r.rebuild()
		return func(fields []string) string {
			switch fields[0] {
			case "push":
				first, err := strconv.Atoi(fields[4])
				require.NoError(t, err)
				n, err := strconv.Atoi(fields[5])
				require.NoError(t, err)
				return answer(ings[fields[1]].push(t, fields[2], series(fields[3], first, n)))
			case "peer":
				switch fields[1] {
				case "joins-later":
					// Gone from this ingester's view now, in it 300ms later:
					// a peer that joined just before the stop.
					r.mu.Lock()
					m := r.members["to"]
					delete(r.members, "to")
					r.rebuild()
					r.mu.Unlock()
					go func() {
						time.Sleep(300 * time.Millisecond)
						r.set("to", func(p *member) { *p = m })
					}()
				case "gone":
					r.mu.Lock()
					delete(r.members, "to")
					r.rebuild()
					r.mu.Unlock()
				default:
					r.set("to", func(m *member) {
						m.addr, m.state, m.tokens = ings["to"].addr, ringpb.State_ACTIVE, []uint32{1 << 31}
						m.stale = fields[1] == "unhealthy"
					})
				}
				return "ok"
			case "pushing":
				r.mu.Lock()
				r.pushing = true
				r.mu.Unlock()
				return "ok"
			case "heal-after":
				n, err := strconv.Atoi(fields[1])
				require.NoError(t, err)
				r.mu.Lock()
				r.healAfter = n
				r.mu.Unlock()
				return "ok"
			case "stop":
				return stopLeaver(t, ings["from"], r, fields[1:])
			case "count":
				m := labels.MustNewMatcher(labels.MatchEqual, "__name__", fields[3])
				return strconv.Itoa(len(ings[fields[1]].samples(t, fields[2], m)[fields[3]]))
			}
			t.Fatalf("unknown command %q", fields[0])
			return ""
		}
	})
}

var (
	attempts = regexp.MustCompile(`after \d+ attempts`)
	address  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// stopLeaver runs one Leaver's Stop over from with short waits, and
// prints the ring events, retries, metrics and Stop's answer.
func stopLeaver(t *testing.T, from *testIngester, r *leaveRing, args []string) string {
	deadline := 5 * time.Second
	if len(args) > 1 {
		var err error
		deadline, err = time.ParseDuration(args[1])
		require.NoError(t, err)
	}
	reg := prometheus.NewRegistry()
	l := NewLeaver(from.Ingester, r, r, from.pool, from.addr, args[0] == "handover", reg, slog.New(slog.DiscardHandler))
	// A quiet period far above the pusher's 5ms between pushes, so that a
	// loaded machine's stall does not end the wait early.
	l.quietPeriod, l.maxWait, l.retryMin, l.retryMax, l.settle = 300*time.Millisecond, 5*time.Second, 10*time.Millisecond, 40*time.Millisecond, time.Second
	retries := 0
	l.after = func(d time.Duration) <-chan time.Time {
		retries++
		r.mu.Lock()
		if r.healAfter > 0 {
			if r.healAfter--; r.healAfter == 0 {
				m := r.members["to"]
				m.stale = false
				r.members["to"] = m
				r.rebuild()
			}
		}
		r.mu.Unlock()
		return time.After(d)
	}
	if args[0] == "requested" {
		l.Request()
	}
	// A distributor pushing until it has seen "from" LEAVING for 50ms: the
	// Leaver must wait until it has stopped before handing over, or the
	// pushes after that are refused.
	r.mu.Lock()
	pushing := r.pushing
	r.pushing = false
	r.mu.Unlock()
	var refused atomic.Int32
	pusherDone, stopped := make(chan struct{}), make(chan struct{})
	if pushing {
		first := make(chan struct{})
		go func() {
			defer close(pusherDone)
			var sawLeaving time.Time
			for k := 1000; ; k++ {
				r.mu.Lock()
				leaving := r.members["from"].state == ringpb.State_LEAVING
				r.mu.Unlock()
				if leaving && sawLeaving.IsZero() {
					sawLeaving = time.Now()
				}
				if !sawLeaving.IsZero() && time.Since(sawLeaving) > 50*time.Millisecond {
					return
				}
				if err := from.push(t, "team", series("p", k, 1)); err != nil {
					refused.Add(1)
				}
				if k == 1000 {
					close(first)
				}
				select {
				case <-stopped: // Stop returned without setting LEAVING
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		// The Leaver measures quiet from the last push: the pusher's.
		<-first
	} else {
		close(pusherDone)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	err := l.Stop(ctx)
	close(stopped)
	<-pusherDone
	r.mu.Lock()
	events := r.events
	r.events = nil
	r.mu.Unlock()
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintln(&b, e)
	}
	// Retries and failures past a deadline are not counted: how many fit
	// is timing.
	failures := int(testutil.ToFloat64(l.failures))
	if err == nil {
		fmt.Fprintf(&b, "retries %d, failures counted %d\n", retries, failures)
	} else {
		fmt.Fprintf(&b, "failures counted: %v\n", failures > 0)
	}
	fmt.Fprintf(&b, "handover failing %v\n", testutil.ToFloat64(l.failing) == 1)
	if pushing {
		fmt.Fprintf(&b, "pushes refused %d\n", refused.Load())
	}
	// How many attempts fit before a deadline is timing, not behaviour.
	// Nor are the test ingesters' ports.
	b.WriteString(address.ReplaceAllString(attempts.ReplaceAllString(answer(err), "after N attempts"), "ADDR"))
	return b.String()
}
