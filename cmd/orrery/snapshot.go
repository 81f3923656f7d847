package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/orrery/orrery/ingester"
)

// serveSnapshot streams the ingester's snapshot as a tar of its data
// directory's layout (docs/operations.md, "Backup and restore"): the
// store, the WAL from a fresh checkpoint, and the ring tokens, so that an
// ingester started on the unpacked directory with the same -instance.id
// owns what this one owned and holds what it held.
func serveSnapshot(w http.ResponseWriter, ing *ingester.Ingester, cfg *Config, logger *slog.Logger) {
	start := time.Now()
	name := fmt.Sprintf("orrery-%s-%s.tar", cfg.InstanceID, start.UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	tw := tar.NewWriter(w)
	err := ing.Snapshot(tw, "store.db")
	if err == nil {
		err = addTokens(tw, filepath.Join(cfg.DataDir, "tokens"))
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		logger.Error("snapshot failed", "err", err)
		// The status is sent: the client must see a broken transfer, not
		// a short archive that looks whole.
		panic(http.ErrAbortHandler)
	}
	logger.Info("snapshot written", "file", name, "duration", time.Since(start))
}

// addTokens adds the ring tokens file, when this ingester has one.
func addTokens(tw *tar.Writer, path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "tokens", Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}
