//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	checkerOnce sync.Once
	checkerBin  string
	checkerErr  error
)

// buildChecker builds cmd/orrery-check next to the orrery binary, once.
func buildChecker(t *testing.T) string {
	t.Helper()
	checkerOnce.Do(func() {
		checkerBin = filepath.Join(filepath.Dir(orreryBin), "orrery-check")
		out, err := exec.Command("go", "build", "-o", checkerBin, "../cmd/orrery-check").CombinedOutput()
		if err != nil {
			checkerErr = errors.New(string(out))
		}
	})
	require.NoError(t, checkerErr, "building orrery-check")
	return checkerBin
}

// checkerReport is the part of orrery-check's JSON report the tests read.
type checkerReport struct {
	Steps                       int      `json:"steps"`
	SamplesAcknowledged         int64    `json:"samples_acknowledged"`
	SamplesUncertain            int64    `json:"samples_uncertain"`
	SamplesRejected             int64    `json:"samples_rejected"`
	SamplesMissing              int      `json:"samples_missing"`
	Answers                     int      `json:"answers"`
	MismatchedAnswers           int      `json:"mismatched_answers"`
	ReadsFailed                 int      `json:"reads_failed"`
	LongestWriteUnavailabilityS float64  `json:"longest_write_unavailability_s"`
	FinalReadComplete           bool     `json:"final_read_complete"`
	Problems                    []string `json:"problems"`
	OK                          bool     `json:"ok"`
}

// checkerRun is a running orrery-check.
type checkerRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	log    string
	done   chan error
}

// startChecker runs orrery-check writing to writeURLs and reading from
// readURLs (comma-separated lists) until finish, with extra flags.
func startChecker(t *testing.T, writeURLs, readURLs string, args ...string) *checkerRun {
	t.Helper()
	c := &checkerRun{log: filepath.Join(t.TempDir(), "orrery-check.log"), done: make(chan error, 1)}
	logFile, err := os.Create(c.log)
	require.NoError(t, err)
	c.cmd = exec.Command(buildChecker(t), append([]string{
		"-json", "-write.url=" + writeURLs, "-read.url=" + readURLs, "-duration=0", "-check.interval=2s",
	}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, logFile
	require.NoError(t, c.cmd.Start())
	go func() { c.done <- c.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(c.log)
			t.Logf("--- orrery-check log (last 8 KiB):\n%s", tail(out, 8192))
		}
	})
	return c
}

// finish stops the writes (SIGTERM), waits for the final read and returns
// the report and whether the checker exited 0.
func (c *checkerRun) finish(t *testing.T) (checkerReport, bool) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	return c.wait(t)
}

func (c *checkerRun) wait(t *testing.T) (checkerReport, bool) {
	t.Helper()
	var err error
	select {
	case err = <-c.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("orrery-check did not finish within 3 minutes")
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	var r checkerReport
	require.NoError(t, json.Unmarshal(c.stdout.Bytes(), &r), "report: %q", c.stdout.String())
	t.Logf("orrery-check: %d steps, %d acknowledged, %d uncertain, %d missing, %d of %d answers mismatched, %d reads failed, longest write unavailability %.1fs",
		r.Steps, r.SamplesAcknowledged, r.SamplesUncertain, r.SamplesMissing, r.MismatchedAnswers, r.Answers, r.ReadsFailed, r.LongestWriteUnavailabilityS)
	return r, err == nil
}

// waitSteps waits until the checker has finished n more read-back passes,
// from its log.
func (c *checkerRun) waitSteps(t *testing.T, n int) {
	t.Helper()
	count := func() int {
		b, _ := os.ReadFile(c.log)
		return strings.Count(string(b), " steps written;")
	}
	from := count()
	require.Eventually(t, func() bool { return count() >= from+n }, 2*time.Minute, 200*time.Millisecond, "orrery-check makes progress")
}

// TestReadBackCheckerSurvivesKill9: orrery-check against one Orrery that is
// killed with -9 and restarted on its data dir while the checker writes:
// every acknowledged sample reads back exactly, and the checker exits 0.
func TestReadBackCheckerSurvivesKill9(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	c := startChecker(t, o.url("/api/v1/push"), o.url("/prometheus"), "-interval=500ms")
	c.waitSteps(t, 2)
	o.kill9(t)
	o.start(t)
	c.waitSteps(t, 2)
	r, ok := c.finish(t)
	require.True(t, ok, "orrery-check exit status; problems: %v", r.Problems)
	require.True(t, r.OK)
	require.Positive(t, r.SamplesAcknowledged)
	require.Zero(t, r.SamplesMissing)
	require.Zero(t, r.MismatchedAnswers)
	require.Positive(t, r.Answers)
}

// TestReadBackCheckerDetectsLoss: the checker is only worth its zeros if it
// reports damage. An Orrery restarted on an empty data dir has lost what it
// acknowledged: the checker counts the missing samples and mismatched
// answers and exits 1.
func TestReadBackCheckerDetectsLoss(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	c := startChecker(t, o.url("/api/v1/push"), o.url("/prometheus"), "-interval=500ms")
	c.waitSteps(t, 2)
	o.kill9(t)
	o.dataDir = t.TempDir()
	o.start(t)
	c.waitSteps(t, 1)
	r, ok := c.finish(t)
	require.False(t, ok, "orrery-check must exit non-zero")
	require.False(t, r.OK)
	require.Positive(t, r.SamplesMissing)
	require.Positive(t, r.MismatchedAnswers)
	require.NotEmpty(t, r.Problems)
}
