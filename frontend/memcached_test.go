package frontend

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// startMemcached runs a real memcached on a free loopback port for the
// test and returns its address. A missing memcached fails the test
// (make test installs it: apt-get install memcached).
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatalf("memcached is not installed (apt-get install -y memcached): %v", err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root unless told to.
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func newMemcached(t *testing.T, addr string, maxItem int) *MemcachedCache {
	t.Helper()
	c, err := NewMemcachedCache([]string{addr}, time.Second, maxItem, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return c
}

func TestMemcachedCache(t *testing.T) {
	c := newMemcached(t, startMemcached(t), 1000)
	ctx := context.Background()
	// Keys of any length and content: they are hashed.
	long := "fe1:team-a:" + strings.Repeat("sum by (job) (rate(x[5m])) ", 40)
	c.Store(ctx, map[string][]byte{long: []byte("v1"), "short": []byte("v2"), "big": make([]byte, 1001)}, time.Minute)
	got := c.Fetch(ctx, []string{long, "short", "big", "absent"})
	require.Equal(t, map[string][]byte{long: []byte("v1"), "short": []byte("v2")}, got)
	require.Zero(t, testutil.ToFloat64(c.failures.WithLabelValues("store")))
}

// TestMemcachedDownIsAMiss: a cache that does not answer makes misses and
// dropped stores, counted, and queries still answer.
func TestMemcachedDownIsAMiss(t *testing.T) {
	c := newMemcached(t, freeAddr(t), 1000)
	ctx := context.Background()
	c.Store(ctx, map[string][]byte{"k": []byte("v")}, time.Minute)
	require.Empty(t, c.Fetch(ctx, []string{"k"}))
	require.Equal(t, 1.0, testutil.ToFloat64(c.failures.WithLabelValues("store")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.failures.WithLabelValues("fetch")))

	f, _, direct := cacheFixture(t, t0.Add(10*time.Hour))
	f.SetCache(c)
	params := rangeParams(`max(node_load1)`, 50*time.Minute, 80*time.Minute, time.Minute)
	_, want := do(t, direct, "a", "/query_range", params)
	_, got := do(t, f, "a", "/query_range", params)
	require.Empty(t, diffResponses(want, got))
}

// TestFrontendOverMemcached: the frontend configured with Memcached
// answers warm queries from it, as the direct query answers.
func TestFrontendOverMemcached(t *testing.T) {
	addr := startMemcached(t)
	down := newDownstream(t, 1)
	rec := &recorder{}
	down.onRequest = rec.hook
	cfg := testConfig()
	cfg.SplitInterval = time.Hour
	cfg.QueryShards = 2
	cfg.ResultsCache.MemcachedAddresses = []string{addr}
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(10*time.Hour))
	require.IsType(t, &MemcachedCache{}, f.cache)
	direct := roundTripHandler{down}
	for _, q := range []string{`sum by (job) (rate(node_cpu_seconds_total[5m]))`, `avg(node_load1)`, `node_load1`} {
		params := rangeParams(q, 30*time.Minute, 150*time.Minute, 30*time.Second)
		_, want := do(t, direct, "a", "/query_range", params)
		rec.take()
		_, cold := do(t, f, "a", "/query_range", params)
		require.NotEmpty(t, rec.take())
		_, warm := do(t, f, "a", "/query_range", params)
		require.Empty(t, rec.take(), "a warm query must not reach the queriers")
		require.Empty(t, diffResponses(want, cold), q)
		require.Empty(t, diffResponses(want, warm), q)
	}
}
