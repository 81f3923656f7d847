//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The seed stack (deploy/compose, scripts/cluster.sh) listens on fixed
// ports, the ones its files name; these tests are serial, and the tests
// that run beside each other use ports from portsFrom up.
const (
	seedDistributor  = "http://127.0.0.1:9009"
	seedQuerier      = "http://127.0.0.1:9010"
	seedRuler        = "http://127.0.0.1:9014"
	seedAlertmanager = "http://127.0.0.1:9093"
)

// The stack's demo tenant, by its user in deploy/compose/orrery/tokens.yaml.
const seedUser, seedPassword = "demo", "demo-password-change-me"

// seedPorts are every port the stack listens on, and the exporters' it
// scrapes (they must be down for seed 000's alert to fire).
var seedPorts = []int{9009, 9010, 9011, 9012, 9013, 9014, 9095, 9110, 9111, 9112, 9113, 9114,
	7946, 7947, 7948, 7949, 7950, 7951, 9093, 9098, 9099, 9100, 9115}

// requireSeedPortsFree fails the test, naming the port, when something
// already listens where the stack will: on a host whose systemd started
// the Debian packages' Alertmanager (9093) or node exporter (9100), the
// stack cannot run, or its alert cannot fire.
func requireSeedPortsFree(t *testing.T) {
	t.Helper()
	for _, port := range seedPorts {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err, "port %d must be free for the seed stack (stop the service that holds it)", port)
		ln.Close()
	}
}

// checkSeedStack checks what seed 000's users see once the stack runs:
// both Prometheus followers' samples in Orrery, seed 000's rules on the
// ruler, and its monitor_service_down alert in Alertmanager for the node
// exporter, which the stack scrapes but nobody runs here (the exporters
// come from a registry).
func checkSeedStack(t *testing.T) {
	t.Helper()
	query := func(q string) []map[string]any {
		resp, err := getDemo(seedQuerier + "/prometheus/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		var r struct {
			Data struct {
				Result []map[string]any `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal(resp, &r) != nil {
			return nil
		}
		return r.Data.Result
	}
	require.Eventually(t, func() bool { return len(query(`up{job="prometheus"} == 1`)) == 2 },
		90*time.Second, time.Second, "both followers' scrapes reach Orrery through remote write")
	require.Eventually(t, func() bool { return len(query(`up{job="node"} == 0`)) == 1 },
		30*time.Second, time.Second, "the missing node exporter is down in Orrery")

	body, err := getDemo(seedRuler + "/prometheus/api/v1/rules")
	require.NoError(t, err)
	for _, group := range []string{`"name":"targets"`, `"name":"host"`} {
		require.Contains(t, string(body), group, "seed 000's rule groups run on the ruler")
	}

	// for: 30s, evaluated every 15s: about a minute after the first
	// samples.
	require.Eventually(t, func() bool {
		resp, err := http.Get(seedAlertmanager + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		if json.NewDecoder(resp.Body).Decode(&alerts) != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "monitor_service_down" && a.Labels["instance"] == "127.0.0.1:9100" {
				return true
			}
		}
		return false
	}, 120*time.Second, time.Second, "seed 000's alert reaches Alertmanager from Orrery's ruler")
}

func getDemo(u string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(seedUser, seedPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	return b, err
}

// TestClusterScriptRunsSeedStack: `make cluster`'s script runs seed 000's
// topology from deploy/compose's files as processes, with Debian's
// Prometheus writing and Alertmanager receiving, and stops it on SIGTERM.
func TestClusterScriptRunsSeedStack(t *testing.T) {
	// Beside the other waiting tests: none of them uses the stack's fixed
	// ports, and the compose test, which does, is serial.
	t.Parallel()
	requireSeedPortsFree(t)
	data := t.TempDir()
	script := exec.Command("../scripts/cluster.sh")
	script.Env = append(os.Environ(),
		"ORRERY="+orreryBin,
		"PROMETHEUS="+dependency(t, "ORRERY_PROMETHEUS2", "Debian's Prometheus, the followers"),
		"ALERTMANAGER="+dependency(t, "ORRERY_ALERTMANAGER", "Alertmanager"),
		"CLUSTER_DATA="+data)
	out, err := os.Create(filepath.Join(data, "script.log"))
	require.NoError(t, err)
	script.Stdout, script.Stderr = out, out
	script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, script.Start())
	exited := make(chan error, 1)
	go func() { exited <- script.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-script.Process.Pid, syscall.SIGKILL)
		// The processes run in sessions of their own: the script's pid
		// file names them, if it did not get to stop them.
		if pids, err := os.ReadFile(filepath.Join(data, "pids")); err == nil {
			for _, f := range strings.Fields(string(pids)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			for _, name := range []string{"script", "distributor", "ingester-1", "ruler", "prometheus-follower-1", "alertmanager"} {
				b, _ := os.ReadFile(filepath.Join(data, name+".log"))
				t.Logf("--- %s log (last 2 KiB):\n%s", name, tail(b, 2048))
			}
		}
	})

	checkSeedStack(t)

	// Ctrl-C: the terminal signals the script's whole process group. The
	// processes, in sessions of their own, do not see it; the script stops
	// the followers first (their last batches still reach the
	// distributor), then Orrery, each cleanly.
	require.NoError(t, syscall.Kill(-script.Process.Pid, syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "the script stops everything and exits 0 on Ctrl-C")
	case <-time.After(45 * time.Second):
		t.Fatal("the script did not stop within 45s of Ctrl-C")
	}
	for _, name := range []string{"ingester-1", "distributor", "ruler"} {
		log, err := os.ReadFile(filepath.Join(data, name+".log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "msg=stopping", "%s stopped cleanly", name)
	}
	for _, port := range []int{9009, 9010, 9011, 9012, 9013, 9014, 9093, 9098, 9099} {
		_, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		require.Error(t, err, "nothing listens on %d after the script stopped", port)
	}
}

// mustRun runs a command (docker, docker-compose, cp) and returns its
// output, failing the test on an error.
func mustRun(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", bin, strings.Join(args, " "), tail(out, 4096))
	return string(out)
}

// ensureDockerd returns once a Docker engine answers, starting one as
// this machine allows (no bridge, no iptables: containers use the host's
// network) when none runs.
func ensureDockerd(t *testing.T) {
	t.Helper()
	dependency(t, "ORRERY_DOCKER", "the docker client")
	dependency(t, "ORRERY_DOCKER_COMPOSE", "docker-compose")
	if exec.Command(os.Getenv("ORRERY_DOCKER"), "info").Run() == nil {
		return
	}
	dockerd := dependency(t, "ORRERY_DOCKERD", "the Docker engine")
	p := startProcess(t, "dockerd", dockerd, "--bridge=none", "--iptables=false")
	// Registered after startProcess's kill -9, so it runs first: dockerd
	// stops its containerd and removes its pid file only when asked.
	t.Cleanup(func() { p.stop(t) })
	require.Eventually(t, func() bool { return exec.Command(os.Getenv("ORRERY_DOCKER"), "info").Run() == nil },
		60*time.Second, 500*time.Millisecond, "dockerd answers")
}

// binaryImage builds an image of one static binary with
// deploy/image/Dockerfile.binary, its data directory at dataDir.
func binaryImage(t *testing.T, tag, binary, dataDir string) {
	t.Helper()
	ctx := t.TempDir()
	mustRun(t, nil, "cp", "-r", "../deploy/image/rootfs", ctx)
	mustRun(t, nil, "cp", binary, filepath.Join(ctx, "binary"))
	mustRun(t, nil, os.Getenv("ORRERY_DOCKER"), "build", "-q", "-t", tag, "--build-arg", "DATA="+dataDir,
		"-f", "../deploy/image/Dockerfile.binary", ctx)
}

// TestComposeRunsSeedStack builds Orrery's image with the repository's
// Dockerfile, and Prometheus 3's and Alertmanager's from their Go modules,
// brings deploy/compose up, checks seed 000's stack through it and takes
// it down again.
func TestComposeRunsSeedStack(t *testing.T) {
	requireSeedPortsFree(t)
	ensureDockerd(t)
	compose := os.Getenv("ORRERY_DOCKER_COMPOSE")
	tag := fmt.Sprintf("itest-%d", os.Getpid())

	// Orrery's image as `make image` builds it, from the static binary
	// the other tests run, in the layout the Dockerfile expects.
	ctx := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(ctx, "bin", "linux-amd64"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(ctx, "deploy", "image"), 0o755))
	mustRun(t, nil, "cp", orreryBin, filepath.Join(ctx, "bin", "linux-amd64", "orrery"))
	mustRun(t, nil, "cp", "-r", "../deploy/image/rootfs", filepath.Join(ctx, "deploy", "image"))
	mustRun(t, nil, os.Getenv("ORRERY_DOCKER"), "build", "-q", "-t", "orrery:"+tag, "-f", "../Dockerfile", ctx)
	binaryImage(t, "prometheus:"+tag, dependency(t, "ORRERY_PROMETHEUS3", "Prometheus 3, static"), "/prometheus")
	binaryImage(t, "alertmanager:"+tag, dependency(t, "ORRERY_ALERTMANAGER_STATIC", "Alertmanager, static"), "/alertmanager")
	t.Cleanup(func() {
		_ = exec.Command(os.Getenv("ORRERY_DOCKER"), "rmi", "orrery:"+tag, "prometheus:"+tag, "alertmanager:"+tag).Run()
	})

	// The image runs as nobody and reports its build.
	version := mustRun(t, nil, os.Getenv("ORRERY_DOCKER"), "run", "--rm", "--network", "host", "orrery:"+tag, "-version")
	require.Contains(t, version, "orrery, version "+testVersion)
	require.Contains(t, version, "revision: "+testRevision)
	user := mustRun(t, nil, os.Getenv("ORRERY_DOCKER"), "image", "inspect", "-f", "{{.Config.User}}", "orrery:"+tag)
	require.Equal(t, "65534:65534", strings.TrimSpace(user))

	env := []string{"ORRERY_IMAGE=orrery:" + tag, "PROMETHEUS_IMAGE=prometheus:" + tag, "ALERTMANAGER_IMAGE=alertmanager:" + tag}
	project := []string{"-p", tag, "-f", "../deploy/compose/docker-compose.yml"}
	t.Cleanup(func() {
		if t.Failed() {
			logs := exec.Command(compose, append(project, "logs", "--no-color", "--tail=30")...)
			logs.Env = append(os.Environ(), env...)
			out, _ := logs.CombinedOutput()
			t.Logf("--- compose logs:\n%s", tail(out, 16384))
		}
		down := exec.Command(compose, append(project, "down", "-v", "--timeout", "20")...)
		down.Env = append(os.Environ(), env...)
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	mustRun(t, env, compose, append(project, "up", "-d")...)

	checkSeedStack(t)
	info, err := getDemo(seedQuerier + "/prometheus/api/v1/status/buildinfo")
	require.NoError(t, err)
	require.Contains(t, string(info), `"version":"`+testVersion+`"`)
	require.Contains(t, string(info), `"revision":"`+testRevision+`"`)

	// Down again: the containers are gone and their ports free.
	mustRun(t, env, compose, append(project, "down", "-v", "--timeout", "20")...)
	ps := mustRun(t, env, compose, append(project, "ps", "-q")...)
	require.Empty(t, strings.TrimSpace(ps))
	_, err = http.Get(seedDistributor + "/ready")
	require.Error(t, err, "the distributor is gone")
}
