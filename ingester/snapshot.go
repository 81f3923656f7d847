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
// The checkpoint is cut first, and its files and the segments after it are
// hard-linked, with the segments' lengths, while pushes wait (a directory
// operation: no copying under a lock); they are streamed after, up to those
// lengths, so a slow reader holds up neither pushes nor checkpoints and no
// record is torn. The store is copied after, so it holds at least every
// chunk flushed before the checkpoint; what is in both (flushed in between)
// merges on the restored ingester's first flush.
func (i *Ingester) Snapshot(tw *tar.Writer, storeName string) error {
	select {
	case <-i.stop:
		return errors.New("ingester: snapshot: the ingester is stopping")
	default:
	}
	files, cleanup, err := i.linkWAL()
	if err != nil {
		return fmt.Errorf("ingester: snapshot: %w", err)
	}
	defer cleanup()
	for _, f := range files {
		if f.dir {
			err = tarDir(tw, f.name)
		} else {
			err = tarFile(tw, f.path, f.name, f.size)
		}
		if err != nil {
			return fmt.Errorf("ingester: snapshot: %w", err)
		}
	}
	err = i.store.Backup(func(size int64, write func(io.Writer) (int64, error)) error {
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

// snapFile is one entry of a snapshot's WAL: a directory, or a file linked
// at path whose first size bytes go into the archive as name.
type snapFile struct {
	name, path string
	size       int64
	dir        bool
}

// linkWAL cuts a checkpoint and hard-links it and the segments after it
// into a directory of their own, so that no later checkpoint or truncation
// removes them while they are streamed; cleanup removes the links.
func (i *Ingester) linkWAL() (files []snapFile, cleanup func(), err error) {
	links, err := os.MkdirTemp(i.dir, "snapshot-")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { _ = os.RemoveAll(links) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	i.cpMu.Lock()
	defer i.cpMu.Unlock()
	if err := i.checkpointLocked(); err != nil {
		return nil, nil, err
	}
	cpDir, first, err := lastCheckpoint(i.walDir())
	if err != nil || cpDir == "" {
		return nil, nil, errors.Join(errors.New("no checkpoint to copy"), err)
	}
	cpName := "wal/" + filepath.Base(cpDir)
	files = append(files, snapFile{name: cpName, dir: true})
	cpSegs, err := segmentIndexes(cpDir)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range cpSegs {
		f, err := link(filepath.Join(cpDir, fmt.Sprintf("%08d", k)), links, fmt.Sprintf("cp-%08d", k))
		if err != nil {
			return nil, nil, err
		}
		f.name = fmt.Sprintf("%s/%08d", cpName, k)
		files = append(files, f)
	}
	// Pushes write the WAL holding walMu shared: with it held here, each
	// segment's length ends on a whole record, and later appends fall
	// past the length streamed.
	i.walMu.Lock()
	defer i.walMu.Unlock()
	segs, err := segmentIndexes(i.walDir())
	if err != nil {
		return nil, nil, err
	}
	for _, k := range segs {
		if k < first {
			continue
		}
		f, err := link(filepath.Join(i.walDir(), fmt.Sprintf("%08d", k)), links, fmt.Sprintf("%08d", k))
		if err != nil {
			return nil, nil, err
		}
		f.name = fmt.Sprintf("wal/%08d", k)
		files = append(files, f)
	}
	return files, cleanup, nil
}

// link hard-links path into dir as name and returns it with its length now.
func link(path, dir, name string) (snapFile, error) {
	info, err := os.Stat(path)
	if err != nil {
		return snapFile{}, err
	}
	to := filepath.Join(dir, name)
	if err := os.Link(path, to); err != nil {
		return snapFile{}, err
	}
	return snapFile{path: to, size: info.Size()}, nil
}

func tarDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: time.Now()})
}

// tarFile copies the first size bytes of the file at path into tw as name.
func tarFile(tw *tar.Writer, path, name string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, size); err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	return nil
}
