package ingester

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// untar unpacks a snapshot into dir, as an operator would with tar -x.
func untar(t *testing.T, snapshot []byte, dir string) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(snapshot))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		path := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(path, 0o700))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o600))
	}
}

// A snapshot taken while pushes go on restores, in a fresh directory, an
// ingester with every sample acknowledged before it began (flushed to the
// store, in memory, in the WAL after the last checkpoint), none torn, and
// nothing pushed after it ended; the source keeps serving throughout.
func TestSnapshotRestoresAnIngester(t *testing.T) {
	src := newTestIngester(t, t.TempDir(), testConfig())
	defer src.stop(t)
	require.NoError(t, src.push(t, "a", series("flushed", 0, 30)))
	src.flush(false)
	require.NoError(t, src.push(t, "a", series("memory", 0, 15)))
	require.NoError(t, src.checkpoint())
	require.NoError(t, src.push(t, "a", series("wal", 0, 5)))
	require.NoError(t, src.push(t, "b", series("other", 0, 3)))

	// Pushes race the snapshot: each acknowledged one before it began must
	// be restored; those during it may or may not be.
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if src.push(t, "a", onePush("racing", int64(k)*1000, float64(k))) == nil {
				acked.Store(int64(k) + 1)
			}
		}
	}()
	for acked.Load() < 50 {
	}
	before := acked.Load()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, src.Snapshot(tw, "store.db"))
	require.NoError(t, tw.Close())
	close(stop)
	wg.Wait()
	require.NoError(t, src.push(t, "a", series("after", 0, 2)), "the source keeps taking pushes")

	dir := t.TempDir()
	names := untar(t, buf.Bytes(), dir)
	require.Contains(t, names, "store.db")
	require.Contains(t, fmt.Sprint(names), "wal/checkpoint.")

	restored := newTestIngester(t, dir, testConfig())
	defer restored.stop(t)
	require.Zero(t, testutil.ToFloat64(restored.m.walCorruptions.WithLabelValues(damageSegment)), "no torn record")
	got := restored.samples(t, "a")
	require.Len(t, got["flushed"], 30)
	require.Len(t, got["memory"], 15)
	require.Len(t, got["wal"], 5)
	require.GreaterOrEqual(t, int64(len(got["racing"])), before)
	require.Empty(t, got["after"])
	require.Len(t, restored.samples(t, "b")["other"], 3)
	// The restored ingester goes on where the source was.
	require.NoError(t, restored.push(t, "a", series("memory", 15, 1)))
	require.Error(t, restored.push(t, "a", onePush("memory", 3500, 3.5)), "out-of-order detection survived")
}

// A stopped ingester refuses a snapshot instead of copying half a WAL.
func TestSnapshotOfStoppedIngesterFails(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	ti.stop(t)
	require.Error(t, ti.Snapshot(tar.NewWriter(io.Discard), "store.db"))
}

// A reader that stalls mid-snapshot holds up neither pushes nor
// checkpoints: the WAL is linked under the locks and streamed after.
func TestSnapshotStalledReaderBlocksNothing(t *testing.T) {
	ti := newTestIngester(t, t.TempDir(), testConfig())
	defer ti.stop(t)
	require.NoError(t, ti.push(t, "a", series("up", 0, 15)))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(pw)
		err := ti.Snapshot(tw, "store.db")
		if err == nil {
			err = tw.Close()
		}
		done <- err
		pw.CloseWithError(err)
	}()
	// Nobody reads yet: the snapshot is stuck writing its first file.
	time.Sleep(200 * time.Millisecond)
	for k := range 5 {
		start := time.Now()
		require.NoError(t, ti.push(t, "a", onePush("up", int64(15+k)*1000, float64(15+k))))
		require.Less(t, time.Since(start), time.Second, "a push waits for no snapshot reader")
	}
	start := time.Now()
	require.NoError(t, ti.checkpoint())
	require.Less(t, time.Since(start), 2*time.Second, "nor does a checkpoint")
	_, err := io.Copy(io.Discard, pr)
	require.NoError(t, err)
	require.NoError(t, <-done)
}
