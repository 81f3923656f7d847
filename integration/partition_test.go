//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// netnsSeq tells apart the namespaces of one test binary.
var netnsSeq atomic.Int32

// netns is a Linux network namespace joined to the host by a veth pair,
// with its own iptables: a process started in it reaches the host, and
// the host reaches it, at the pair's addresses only, and its packets can
// be filtered without touching the host's network.
type netns struct {
	t              *testing.T
	name           string
	hostIP, nsIP   string
	hostIf, gossip string // host-side interface; the filter chain
}

// newNetns creates a namespace, removed at the end of the test. It needs
// root, ip (iproute2) and iptables: without them the test fails
// (scripts/test-deps.sh installs them).
func newNetns(t *testing.T) *netns {
	t.Helper()
	missing := ""
	for _, bin := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing += " " + bin
		}
	}
	if os.Geteuid() != 0 {
		missing += " root"
	}
	if missing != "" {
		// Never a skip: a suite that skips what it cannot run goes green
		// without testing.
		t.Fatalf("network namespaces need%s (scripts/test-deps.sh installs iproute2 and iptables)", missing)
	}
	seq := os.Getpid()%10000*10 + int(netnsSeq.Add(1))%10
	n := &netns{
		t: t, name: fmt.Sprintf("orrery%d", seq), hostIf: fmt.Sprintf("orr%dh", seq), gossip: "ORRERY_GOSSIP",
		// 10.213.0.0/16, one /30-ish pair per namespace.
		hostIP: fmt.Sprintf("10.213.%d.%d", seq/64%256, seq%64*4+1),
		nsIP:   fmt.Sprintf("10.213.%d.%d", seq/64%256, seq%64*4+2),
	}
	n.run("ip", "netns", "add", n.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.hostIf).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	nsIf := fmt.Sprintf("orr%dn", seq)
	n.run("ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", nsIf, "netns", n.name)
	n.run("ip", "addr", "add", n.hostIP+"/30", "dev", n.hostIf)
	n.run("ip", "link", "set", n.hostIf, "up")
	n.run("ip", "-n", n.name, "addr", "add", n.nsIP+"/30", "dev", nsIf)
	n.run("ip", "-n", n.name, "link", "set", nsIf, "up")
	n.run("ip", "-n", n.name, "link", "set", "lo", "up")
	n.iptables("-N", n.gossip)
	n.iptables("-I", "INPUT", "-j", n.gossip)
	n.iptables("-I", "OUTPUT", "-j", n.gossip)
	return n
}

func (n *netns) run(args ...string) {
	n.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(n.t, err, "%s: %s", strings.Join(args, " "), out)
}

func (n *netns) iptables(args ...string) {
	n.t.Helper()
	n.run(append([]string{"ip", "netns", "exec", n.name, "iptables"}, args...)...)
}

// cutGossip drops, inside the namespace, every packet of memberlist: all
// UDP (only gossip uses it) and TCP to or from the gossip ports given (the
// namespace's own and its peers'). gRPC and HTTP are untouched. With
// probability below 1, each gossip packet is dropped at random instead:
// slow, lossy gossip.
func (n *netns) cutGossip(probability float64, ports ...int) {
	n.t.Helper()
	drop := []string{"-j", "DROP"}
	if probability < 1 {
		drop = []string{"-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(probability), "-j", "DROP"}
	}
	list := make([]string, len(ports))
	for k, p := range ports {
		list[k] = fmt.Sprint(p)
	}
	n.iptables(append([]string{"-A", n.gossip, "-p", "udp"}, drop...)...)
	n.iptables(append([]string{"-A", n.gossip, "-p", "tcp", "-m", "multiport", "--ports", strings.Join(list, ",")}, drop...)...)
}

// healGossip removes every filter.
func (n *netns) healGossip() {
	n.t.Helper()
	n.iptables("-F", n.gossip)
}

// ringViewAt is the ring as the member serving base sees it.
func ringViewAt(t *testing.T, base string) ringView {
	t.Helper()
	_, body := rawGet(t, base+"/ring?format=json")
	var st ringView
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	return st
}

// TestPartitionGossipCutAndLossy is RELIABILITY.md scenario 8 at RF=3:
// ing3 runs in its own network namespace, where a filter drops its gossip
// while its gRPC stays reachable. Cut long enough that every side forgets
// the other (10 × the 4 s heartbeat timeout), then healed; then its gossip
// loses half its packets (slow gossip), then healed. Through all of it no
// write fails and every acknowledged sample is read back, complete and
// without a warning; after each healing the ring converges: every member,
// ing3 included, shows the same token owners (owners_digest), every member
// ACTIVE and healthy, and no ghost (no tombstone, no forgotten marker).
func TestPartitionGossipCutAndLossy(t *testing.T) {
	t.Parallel()
	ns := newNetns(t)
	c := newCluster(t, 3)
	ids := []string{"ing1", "ing2", "dist", "quer"}
	for _, id := range ids {
		o := &orrery{http: freePort(t), grpc: freePort(t), gossip: freePort(t), dataDir: t.TempDir()}
		c.members[id] = o
		if c.seed == nil {
			c.seed = o
		}
		// Gossip on the host end of the pair, so that ing3 reaches it.
		c.extra[id] = []string{
			fmt.Sprintf("-memberlist.bind-address=%s:%d", ns.hostIP, o.gossip),
			fmt.Sprintf("-memberlist.join=%s:%d", ns.hostIP, c.seed.gossip),
		}
		c.startMember(id)
	}
	ing3 := struct{ http, grpc, gossip int }{freePort(t), freePort(t), freePort(t)}
	ing3URL := fmt.Sprintf("http://%s:%d", ns.nsIP, ing3.http)
	startProcess(t, "ing3", "ip", append([]string{"netns", "exec", ns.name, orreryBin,
		"-target=ingester", "-instance.id=ing3", "-data.dir=" + t.TempDir(), "-replication-factor=3",
		fmt.Sprintf("-http.listen-address=%s:%d", ns.nsIP, ing3.http),
		fmt.Sprintf("-grpc.listen-address=%s:%d", ns.nsIP, ing3.grpc),
		fmt.Sprintf("-memberlist.bind-address=%s:%d", ns.nsIP, ing3.gossip),
		fmt.Sprintf("-memberlist.join=%s:%d", ns.hostIP, c.seed.gossip),
	}, fastRing...)...)
	waitReady(t, ing3URL+"/ready")
	gossipPorts := []int{ing3.gossip}
	bases := map[string]string{"ing3": ing3URL}
	for _, id := range ids {
		gossipPorts = append(gossipPorts, c.members[id].gossip)
		bases[id] = c.members[id].url("")
	}
	converged := func(phase string) {
		t.Helper()
		var last string
		ok := assertEventually(60*time.Second, func() bool {
			digests := map[string]bool{}
			for id, base := range bases {
				st := ringViewAt(t, base)
				digests[st.OwnersDigest] = true
				seen := st.byID()
				last = fmt.Sprintf("%s sees %+v", id, st.Members)
				if len(seen) != len(bases) {
					return false
				}
				for other := range bases {
					if m := seen[other]; m.State != "ACTIVE" || !m.Healthy || m.Forgotten {
						return false
					}
				}
			}
			last = fmt.Sprintf("owner digests %v", digests)
			return len(digests) == 1
		})
		require.True(t, ok, "%s: the ring converges with no ghost; last: %s", phase, last)
	}
	converged("start")

	quer := c.members["quer"].url("/prometheus")
	w := newCountingWriter(c.members["dist"].url(""))
	writeAndRead := func(phase string, steps int) {
		t.Helper()
		for range steps {
			require.NoError(t, w.write(t), "%s: every write succeeds", phase)
			time.Sleep(100 * time.Millisecond)
		}
		resp, err := get(quer, "/api/v1/query", samplesQuery())
		require.NoError(t, err)
		require.Equal(t, "success", resp.Status, "%s: %s", phase, resp.Error)
		require.Empty(t, resp.Warnings, phase)
		require.Equal(t, w.acked, sampleCount(t, resp), "%s: every acknowledged sample is read back", phase)
	}
	writeAndRead("before", 5)

	// Cut: each side sees the other unhealthy, then forgets it; ing3's
	// gRPC still answers (its HTTP, on the same address, shows it).
	ns.cutGossip(1, gossipPorts...)
	require.Eventually(t, func() bool { return !c.ring("dist")["ing3"].Healthy }, 30*time.Second, 200*time.Millisecond)
	writeAndRead("ing3 cut off", 10)
	require.Eventually(t, func() bool {
		return ringViewOf(t, c.members["quer"]).byID()["ing3"].Forgotten && ringViewAt(t, ing3URL).byID()["ing1"].State == "LEFT"
	}, 90*time.Second, 500*time.Millisecond, "both sides forget each other")
	waitReady(t, ing3URL+"/ready")
	writeAndRead("ing3 forgotten", 10)

	ns.healGossip()
	converged("after the cut")
	writeAndRead("healed", 10)

	// Slow, lossy gossip: half of ing3's gossip packets are lost.
	ns.cutGossip(0.5, gossipPorts...)
	writeAndRead("lossy gossip", 30)
	ns.healGossip()
	converged("after lossy gossip")
	writeAndRead("healed again", 5)
}

// assertEventually polls cond until it holds or d passes.
func assertEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(300 * time.Millisecond)
	}
}
