//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var orreryBin string

// The version and revision the tests' binary is stamped with.
const testVersion, testRevision = "9.9.9-itest", "0123456789abcdef"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orrery-integration")
	if err != nil {
		panic(err)
	}
	orreryBin = filepath.Join(dir, "orrery")
	// Stamped as the Makefile stamps a release, so the tests see what
	// -version and buildinfo report.
	build := exec.Command("go", "build", "-o", orreryBin, "-ldflags",
		"-X github.com/prometheus/common/version.Version="+testVersion+" -X github.com/prometheus/common/version.Revision="+testRevision, "../cmd/orrery")
	// Static, as the image ships it: the compose test puts this binary in
	// an image FROM scratch.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building orrery:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range portsBelow - portsFrom {
		p := portsFrom + int(nextPort.Add(1))%(portsBelow-portsFrom)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port in [%d, %d)", portsFrom, portsBelow)
	return 0
}

// Ports handed out by freePort come, in turn, from below Linux's
// ephemeral range (32768 and up): a port the kernel chose (":0") and the
// test released was sometimes taken again by an outgoing connection
// before the process the test started could listen on it. Each port is
// handed out once per pass over the range.
const portsFrom, portsBelow = 20000, 32000

var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(int64(os.Getpid() % (portsBelow - portsFrom)))
	return &n
}()

// process is a child process whose output goes to a log file that is
// printed when the test fails.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     string
	started time.Time // before exec: anything the process stamps is later
}

func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	started := time.Now()
	require.NoError(t, cmd.Start())
	p := &process{name: name, cmd: cmd, log: logPath, started: started}
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		f.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (last 4 KiB):\n%s", name, tail(out, 4096))
		}
	})
	return p
}

func (p *process) signal(s syscall.Signal) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(s)
	}
}

// kill9 kills the process as a crash would, and waits for it to be gone.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// stop asks the process to shut down gracefully and waits.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not stop within 90s", p.name)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 60s", url)
}

// orrery is one Orrery process with its addresses.
type orrery struct {
	*process
	http, grpc, gossip int
	dataDir            string
}

func (o *orrery) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", o.http, path) }

// startOrrery runs -target=all on fresh ports; args are appended to the
// defaults so a test can override any flag.
func startOrrery(t *testing.T, dataDir string, args ...string) *orrery {
	t.Helper()
	o := &orrery{http: freePort(t), grpc: freePort(t), gossip: freePort(t), dataDir: dataDir}
	o.start(t, args...)
	return o
}

func (o *orrery) start(t *testing.T, args ...string) {
	t.Helper()
	base := []string{
		"-target=all", "-data.dir=" + o.dataDir, "-instance.id=orrery-test",
		fmt.Sprintf("-http.listen-address=127.0.0.1:%d", o.http),
		fmt.Sprintf("-grpc.listen-address=127.0.0.1:%d", o.grpc),
		fmt.Sprintf("-memberlist.bind-address=127.0.0.1:%d", o.gossip),
	}
	o.process = startProcess(t, "orrery", orreryBin, append(base, args...)...)
	waitReady(t, o.url("/ready"))
}

// dependency returns the executable that environment variable env names,
// something a test needs (what says which). When env is unset or names no
// executable file the test fails, in CI or not: a suite that skips what it
// cannot run turns green without testing.
func dependency(t *testing.T, env, what string) string {
	t.Helper()
	path := os.Getenv(env)
	problem := env + " is not set"
	if path != "" {
		info, err := os.Stat(path)
		switch {
		case err != nil:
			problem = fmt.Sprintf("%s=%s: %v", env, path, err)
		case info.IsDir() || info.Mode().Perm()&0o111 == 0:
			problem = fmt.Sprintf("%s=%s is not an executable file", env, path)
		default:
			return path
		}
	}
	t.Fatalf("%s (%s): install it with `eval \"$(scripts/test-deps.sh)\"`, which `make test` runs", problem, what)
	return ""
}

// startPrometheus3 runs the reference Prometheus with the remote-write
// receiver and no scrape jobs.
func startPrometheus3(t *testing.T) (base string) {
	t.Helper()
	return startPrometheus3WithConfig(t, func(int) string { return "global:\n  scrape_interval: 15s\n" })
}

// startPrometheus3WithConfig runs the reference Prometheus with the config
// that config returns for its listen port, and extra flags.
func startPrometheus3WithConfig(t *testing.T, config func(port int) string, flags ...string) (base string) {
	t.Helper()
	bin := dependency(t, "ORRERY_PROMETHEUS3", "the reference Prometheus 3")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	port := freePort(t)
	require.NoError(t, os.WriteFile(cfg, []byte(config(port)), 0o644))
	args := []string{
		"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--web.enable-remote-write-receiver",
	}
	startProcess(t, "prometheus3", bin, append(args, flags...)...)
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/-/ready")
	return base
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// startPrometheus2 runs Debian's Prometheus with the config that config
// returns for its listen port (so it can scrape itself), and returns its
// base URL. Without that Prometheus the test fails (see dependency).
func startPrometheus2(t *testing.T, config func(port int) string) string {
	t.Helper()
	_, base := startPrometheus2Process(t, "prometheus2", config)
	return base
}

// startPrometheus2Process is startPrometheus2 for a test that needs the
// process, to kill it.
func startPrometheus2Process(t *testing.T, name string, config func(port int) string) (*process, string) {
	t.Helper()
	bin := dependency(t, "ORRERY_PROMETHEUS2", "Debian's prometheus package")
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config(port)), 0o644))
	p := startProcess(t, name, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base+"/-/ready")
	return p, base
}

// selfScrapeRemoteWrite is a Prometheus config that scrapes itself every
// second and remote-writes to url, with extra remote_write settings.
func selfScrapeRemoteWrite(url, extra string) func(port int) string {
	return func(port int) string {
		return fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%d']
remote_write:
  - url: %s
    queue_config: {batch_send_deadline: 1s}
%s
`, port, url, extra)
	}
}
