package ingester

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Snapshot writes to tw what a new ingester needs to start where this one
// is, while this one keeps serving: a fresh WAL checkpoint and the WAL
// segments after it under wal/, and a consistent copy of the store under
// storeName. Unpacked into an empty data directory, it starts an ingester
// that holds every sample this one had acknowledged when the snapshot
// began (WAL.md, "Snapshots").
//
// The checkpoint is cut first and the segments after it are copied while
// pushes wait (milliseconds: the segments are as young as the
// checkpoint), so no record is torn; the store is copied after, so it
// holds at least every chunk flushed before the checkpoint. What is in both
// (flushed in between) merges on the restored ingester's first flush.
func (i *Ingester) Snapshot(tw *tar.Writer, storeName string) error {
	select {
	case <-i.stop:
		return errors.New("ingester: snapshot: the ingester is stopping")
	default:
	}
	if err := i.snapshotWAL(tw); err != nil {
		return fmt.Errorf("ingester: snapshot: %w", err)
	}
	err := i.store.Backup(func(size int64, write func(io.Writer) (int64, error)) error {
		if err := tw.WriteHeader(&tar.Header{Name: storeName, Mode: 0o600, Size: size, ModTime: time.Now()}); err != nil {
			return err
		}
		_, err := write(tw)
		return err
	})
	if err != nil {
		return fmt.Errorf("ingester: snapshot: store: %w", err)
	}
	return nil
}

// snapshotWAL cuts a checkpoint and copies it and the segments after it,
// holding cpMu so that no other checkpoint deletes what is being copied.
func (i *Ingester) snapshotWAL(tw *tar.Writer) error {
	i.cpMu.Lock()
	defer i.cpMu.Unlock()
	if err := i.checkpointLocked(); err != nil {
		return err
	}
	cpDir, first, err := lastCheckpoint(i.walDir())
	if err != nil || cpDir == "" {
		return errors.Join(errors.New("no checkpoint to copy"), err)
	}
	cpName := "wal/" + filepath.Base(cpDir)
	if err := tarDir(tw, cpName); err != nil {
		return err
	}
	cpSegs, err := segmentIndexes(cpDir)
	if err != nil {
		return err
	}
	for _, k := range cpSegs {
		if err := tarFile(tw, filepath.Join(cpDir, fmt.Sprintf("%08d", k)), fmt.Sprintf("%s/%08d", cpName, k)); err != nil {
			return err
		}
	}
	// Pushes write the WAL holding walMu shared: with it held here, the
	// segments end on whole records.
	i.walMu.Lock()
	defer i.walMu.Unlock()
	segs, err := segmentIndexes(i.walDir())
	if err != nil {
		return err
	}
	for _, k := range segs {
		if k < first {
			continue
		}
		if err := tarFile(tw, filepath.Join(i.walDir(), fmt.Sprintf("%08d", k)), fmt.Sprintf("wal/%08d", k)); err != nil {
			return err
		}
	}
	return nil
}

func tarDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: time.Now()})
}

// tarFile copies the file at path into tw as name, as long as it is now.
func tarFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, info.Size()); err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	return nil
}
