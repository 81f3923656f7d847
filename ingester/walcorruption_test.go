package ingester

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"
)

// metricSum sums the series of a metric family in reg whose labels include
// every name=value pair of match.
func metricSum(t *testing.T, reg prometheus.Gatherer, name string, match ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k := 0; k+1 < len(match); k += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == match[k] && lp.GetValue() == match[k+1])
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func (ti *testIngester) corruptions(t *testing.T, kind string) float64 {
	return metricSum(t, ti.reg, "orrery_ingester_wal_corruptions_total", "kind", kind)
}

// cutSegment starts a new WAL segment, as a checkpoint or a full segment
// would, and returns the path of the one it completed.
func (ti *testIngester) cutSegment(t testing.TB) string {
	t.Helper()
	seg := lastSegment(t, filepath.Join(ti.dir, "wal"))
	ti.walMu.Lock()
	defer ti.walMu.Unlock()
	_, err := ti.wal.NextSegmentSync()
	require.NoError(t, err)
	return seg
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// flipBytes inverts n bytes of path from off.
func flipBytes(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	for k := range b {
		b[k] ^= 0xff
	}
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func seconds(from, to int) []int64 {
	var out []int64
	for s := from; s < to; s++ {
		out = append(out, int64(s)*1000)
	}
	return out
}

// TestWALDamageInAMiddleSegmentLosesOnlyItsTail damages the second of
// three pushes, in a segment followed by another: the pushes before and
// after it survive, the process starts, the metric counts one damaged
// segment, and a second start meets no damage (the recovered state was
// checkpointed over it).
func TestWALDamageInAMiddleSegmentLosesOnlyItsTail(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, seg string, recordEnd int64)
	}{
		{"bits flipped", func(t *testing.T, seg string, recordEnd int64) { flipBytes(t, seg, recordEnd+10, 4) }},
		{"truncated", func(t *testing.T, seg string, recordEnd int64) { require.NoError(t, os.Truncate(seg, recordEnd+10)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ti := newTestIngester(t, dir, testConfig())
			require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
			seg := lastSegment(t, filepath.Join(dir, "wal"))
			recordEnd := fileSize(t, seg)
			require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
			require.Equal(t, seg, ti.cutSegment(t))
			require.NoError(t, ti.push(t, "a", series("up", 20, 10)))
			ti.crash(t)
			c.damage(t, seg, recordEnd)

			ti = newTestIngester(t, dir, testConfig())
			require.Equal(t, 1.0, ti.corruptions(t, damageSegment))
			require.Equal(t, append(seconds(0, 10), seconds(20, 30)...), ti.samples(t, "a")["up"])
			require.NoError(t, ti.push(t, "a", series("up", 30, 1)))
			ti.crash(t)

			ti = newTestIngester(t, dir, testConfig())
			defer ti.stop(t)
			require.Zero(t, ti.corruptions(t, damageSegment), "the damage was checkpointed away")
			require.Equal(t, append(seconds(0, 10), seconds(20, 31)...), ti.samples(t, "a")["up"])
		})
	}
}

func TestWALDamageAtTheEndOfTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	seg := lastSegment(t, filepath.Join(dir, "wal"))
	recordEnd := fileSize(t, seg)
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	ti.crash(t)
	// A torn write: the last record is cut short.
	require.NoError(t, os.Truncate(seg, recordEnd+20))

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, 1.0, ti.corruptions(t, damageSegment))
	require.Equal(t, seconds(0, 10), ti.samples(t, "a")["up"])
	require.NoError(t, ti.push(t, "a", series("up", 10, 1)))
}

// checkpointFile returns the only segment of the only checkpoint and the
// offset just past its last non-zero byte (segments are padded to a page).
func checkpointFile(t *testing.T, dir string) (string, int64) {
	t.Helper()
	cps, err := filepath.Glob(filepath.Join(dir, "wal", checkpointPrefix+"*"))
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.False(t, strings.HasSuffix(cps[0], ".tmp"))
	seg := filepath.Join(cps[0], "00000000")
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	end := int64(len(b))
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return seg, end
}

// TestCheckpointDamage damages the checkpoint a crashed ingester restarts
// from. It must start; the checkpoint's records before the damage and the
// WAL after the checkpoint are kept; samples whose series record was lost
// are counted and dropped.
func TestCheckpointDamage(t *testing.T) {
	prepare := func(t *testing.T) (string, *testIngester) {
		dir := t.TempDir()
		ti := newTestIngester(t, dir, testConfig())
		require.NoError(t, ti.push(t, "a", series("a", 0, 5), series("b", 0, 5)))
		require.NoError(t, ti.checkpoint())
		require.NoError(t, ti.push(t, "a", series("a", 5, 5), series("b", 5, 5)))
		ti.crash(t)
		return dir, ti
	}

	t.Run("in its last chunks", func(t *testing.T) {
		dir, _ := prepare(t)
		seg, end := checkpointFile(t, dir)
		flipBytes(t, seg, end-8, 4)

		ti := newTestIngester(t, dir, testConfig())
		defer ti.stop(t)
		require.Equal(t, 1.0, ti.corruptions(t, damageCheckpoint))
		got := ti.samples(t, "a")
		// Series records come first in a checkpoint: both series survive,
		// and with them every sample logged after the checkpoint.
		require.Subset(t, got["a"], seconds(5, 10))
		require.Subset(t, got["b"], seconds(5, 10))
		require.Zero(t, metricSum(t, ti.reg, "orrery_ingester_wal_replay_dropped_samples_total"))
	})

	t.Run("in its series records", func(t *testing.T) {
		dir, _ := prepare(t)
		seg, _ := checkpointFile(t, dir)
		flipBytes(t, seg, 12, 4)

		ti := newTestIngester(t, dir, testConfig())
		defer ti.stop(t)
		require.Equal(t, 1.0, ti.corruptions(t, damageCheckpoint))
		require.Equal(t, 10.0, metricSum(t, ti.reg, "orrery_ingester_wal_replay_dropped_samples_total"), "the 5+5 samples logged after the checkpoint name lost series")
		require.NoError(t, ti.push(t, "a", series("a", 10, 1)), "the ingester takes writes")
		require.Equal(t, seconds(10, 11), ti.samples(t, "a")["a"])
	})
}

// TestUndecodableRecordIsSkippedAlone logs a record that passes its
// checksum but does not decode, between two pushes: only it is lost.
func TestUndecodableRecordIsSkippedAlone(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	require.NoError(t, ti.wal.Log([]byte{recSamples, 0x80}))
	require.NoError(t, ti.wal.Log([]byte{99, 1, 2, 3}))
	// Samples of a ref no series record names: counted, dropped.
	require.NoError(t, ti.wal.Log(encodeSamples(nil, recSamples, []refSample{{ref: 1 << 40, sample: sample{T: 1, V: 1}}}, nil, false)))
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	ti.crash(t)

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, 2.0, ti.corruptions(t, damageRecord))
	require.Zero(t, ti.corruptions(t, damageSegment))
	require.Equal(t, 1.0, metricSum(t, ti.reg, "orrery_ingester_wal_replay_dropped_samples_total"))
	require.Equal(t, seconds(0, 20), ti.samples(t, "a")["up"])
}

// copyTree copies the regular files under src to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	}))
}

// FuzzWALDamage damages one byte of, or truncates, any file of a WAL with a
// checkpoint and two segments, holding samples in order and out of order:
// the ingester must start, answer queries and take writes whatever the
// damage.
func FuzzWALDamage(f *testing.F) {
	template := f.TempDir()
	ti := newTestIngester(f, template, testConfig(), withWindow(time.Hour))
	// Newest first: the later pushes are out of order, in the checkpoint
	// and in both segments.
	for k := 3; k >= 0; k-- {
		require.NoError(f, ti.push(f, "a", series("a", k*10, 10), series("b", k*10, 10)))
		if k == 2 {
			require.NoError(f, ti.checkpoint())
		}
		if k == 1 {
			ti.cutSegment(f)
		}
	}
	ti.crash(f)
	var files []string
	require.NoError(f, filepath.WalkDir(filepath.Join(template, "wal"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	}))
	require.GreaterOrEqual(f, len(files), 3)
	for k := range files {
		for _, off := range []uint32{0, 7, 40, 200, 1000} {
			f.Add(uint8(k), off, byte(0xff), false)
		}
		f.Add(uint8(k), uint32(100), byte(0), true)
	}

	f.Fuzz(func(t *testing.T, file uint8, off uint32, mask byte, truncate bool) {
		dir := t.TempDir()
		copyTree(t, template, dir)
		rel, err := filepath.Rel(template, files[int(file)%len(files)])
		require.NoError(t, err)
		path := filepath.Join(dir, rel)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		if len(b) == 0 {
			return
		}
		at := int(off) % len(b)
		if truncate {
			b = b[:at]
		} else {
			b[at] ^= mask
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))

		ti := newTestIngester(t, dir, testConfig())
		defer ti.stop(t)
		ti.samples(t, "a")
		require.NoError(t, ti.push(t, "a", series("a", 1000, 1)))
	})
}

// TestWALMissingMiddleSegment deletes a whole segment between two others:
// the ingester starts (wlog alone refuses a WAL with a gap), counts one
// damaged segment, and keeps the samples of the segments around it.
func TestWALMissingMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	ti.cutSegment(t)
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	middle := ti.cutSegment(t)
	require.NoError(t, ti.push(t, "a", series("up", 20, 10)))
	ti.crash(t)
	require.NoError(t, os.Remove(middle))

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, 1.0, ti.corruptions(t, damageSegment))
	require.Equal(t, append(seconds(0, 10), seconds(20, 30)...), ti.samples(t, "a")["up"])
	require.NoError(t, ti.push(t, "a", series("up", 30, 1)), "the WAL takes writes again")
}

// TestWALMissingFirstSegment deletes the first segment (no checkpoint yet):
// the loss is counted, and the ingester starts and takes writes.
func TestWALMissingFirstSegment(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	first := ti.cutSegment(t)
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	ti.crash(t)
	require.NoError(t, os.Remove(first))

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, 1.0, ti.corruptions(t, damageSegment))
	require.NoError(t, ti.push(t, "a", series("other", 0, 1)))
}

// TestWALSegmentsAfterCheckpointMissing deletes every segment from the
// checkpoint on: the checkpoint's data is served, the loss counted, and
// samples written after the restart survive the next crash (wlog alone
// would start writing at segment 0, below the checkpoint, where replay
// never looks).
func TestWALSegmentsAfterCheckpointMissing(t *testing.T) {
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig())
	require.NoError(t, ti.push(t, "a", series("up", 0, 10)))
	require.NoError(t, ti.checkpoint())
	require.NoError(t, ti.push(t, "a", series("up", 10, 10)))
	ti.crash(t)
	segs, err := segmentIndexes(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	for _, k := range segs {
		require.NoError(t, os.Remove(wlog.SegmentName(filepath.Join(dir, "wal"), k)))
	}

	ti = newTestIngester(t, dir, testConfig())
	require.GreaterOrEqual(t, ti.corruptions(t, damageSegment), 1.0)
	require.Equal(t, seconds(0, 10), ti.samples(t, "a")["up"], "the checkpoint's samples")
	require.NoError(t, ti.push(t, "a", series("up", 30, 5)))
	ti.crash(t)

	ti = newTestIngester(t, dir, testConfig())
	defer ti.stop(t)
	require.Equal(t, append(seconds(0, 10), seconds(30, 35)...), ti.samples(t, "a")["up"], "written after the damage, acknowledged, kept")
}
