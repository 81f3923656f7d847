//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// walSegments returns the WAL segment files of dataDir in order.
func walSegments(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "wal"))
	require.NoError(t, err)
	var idx []int
	for _, e := range entries {
		if k, err := strconv.Atoi(e.Name()); err == nil {
			idx = append(idx, k)
		}
	}
	sort.Ints(idx)
	out := make([]string, 0, len(idx))
	for _, k := range idx {
		out = append(out, filepath.Join(dataDir, "wal", fmt.Sprintf("%08d", k)))
	}
	return out
}

// flip inverts 4 bytes of path at off.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 4)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	for k := range b {
		b[k] ^= 0xff
	}
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

// TestWALCorruptionEndToEnd is RELIABILITY.md scenario 6: a stopped
// process's checkpoint and a middle WAL segment are damaged on disk. It
// starts again and serves; the metric counts each damage; everything
// before the damage is there (the first part from the store and the
// checkpoint, the second part up to the damage in its segment) and so is
// everything in the later segment; only the damaged segment's tail is lost.
func TestWALCorruptionEndToEnd(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"-ingester.handover-on-shutdown=false", "-ingester.checkpoint-period=1h"}
	o := startOrrery(t, dir, keep...)
	w := &ackWriter{gen: loadgen.New(11, 1), base: time.Now().Add(-2 * time.Hour)}
	push := func(from, to int) {
		for step := from; step < to; step++ {
			w.runOne(t, o.url("/api/v1/push"), step)
		}
	}
	// Part one ends in a graceful stop: flushed to the store, checkpointed.
	push(0, 10)
	o.stop(t)
	// Part two goes to a WAL segment of its own: each start opens a new one.
	o.start(t, keep...)
	push(10, 30)
	o.kill9(t)
	o.start(t, keep...)
	push(30, 40)
	o.kill9(t)

	segs := walSegments(t, dir)
	require.GreaterOrEqual(t, len(segs), 2)
	middle := segs[len(segs)-2]
	st, err := os.Stat(middle)
	require.NoError(t, err)
	require.Positive(t, st.Size(), "part two is in %s", middle)
	flip(t, middle, st.Size()/2)
	cps, err := filepath.Glob(filepath.Join(dir, "wal", "checkpoint.*", "00000000"))
	require.NoError(t, err)
	require.Len(t, cps, 1)
	cp, err := os.ReadFile(cps[0])
	require.NoError(t, err)
	end := int64(len(cp))
	for end > 0 && cp[end-1] == 0 {
		end--
	}
	flip(t, cps[0], end-8)

	o.start(t, keep...)
	t.Logf("replay took %vs", metricValue(t, o, "orrery_ingester_wal_replay_duration_seconds"))
	require.Equal(t, 1.0, labelledMetric(t, o, "orrery_ingester_wal_corruptions_total", `kind="segment"`))
	require.Equal(t, 1.0, labelledMetric(t, o, "orrery_ingester_wal_corruptions_total", `kind="checkpoint"`))
	got := rawSamples(t, o, time.Now())
	require.Len(t, got, w.gen.Len(), "series")
	lostFrom := 40
	for _, step := range w.acked {
		for key, ts := range got {
			if !ts[w.ts(step)] {
				lostFrom = min(lostFrom, step)
				require.True(t, step >= 10 && step < 30, "step %d of %s is outside the damaged segment", step, key)
			}
		}
	}
	// What is lost is a tail of the damaged segment: every step after the
	// first lost one, up to the segment's end, is lost in every series.
	for step := lostFrom; step < 30; step++ {
		for key, ts := range got {
			require.False(t, ts[w.ts(step)], "step %d of %s survived after the damage at step %d", step, key, lostFrom)
		}
	}
	require.Greater(t, lostFrom, 10, "the damaged segment's records before the damage are kept")
	t.Logf("damage in the middle segment lost steps %d to 29 of 10 to 29", lostFrom)

	// It takes writes, and the damage was checkpointed away: a restart
	// counts nothing.
	push(40, 41)
	o.kill9(t)
	o.start(t, keep...)
	require.Zero(t, labelledMetric(t, o, "orrery_ingester_wal_corruptions_total", `kind=`))
}
