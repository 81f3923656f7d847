package ring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// generateTokens returns n distinct, uniformly random tokens, sorted, none
// of which is in taken: one candidate for chooseTokens.
func generateTokens(n int, taken map[uint32]struct{}, rnd func() uint32) []uint32 {
	out := make([]uint32, 0, n)
	mine := make(map[uint32]struct{}, n)
	for len(out) < n {
		t := rnd()
		if _, ok := taken[t]; ok {
			continue
		}
		if _, ok := mine[t]; ok {
			continue
		}
		mine[t] = struct{}{}
		out = append(out, t)
	}
	return sortedUnique(out)
}

// tokensFile is the on-disk form: JSON, so that an operator can read and,
// in an emergency, edit it.
type tokensFile struct {
	Tokens []uint32 `json:"tokens"`
}

// loadTokens reads the tokens persisted at path. A missing file is not an
// error: it returns no tokens. A file that exists but cannot be parsed is
// an error, because silently drawing new tokens would move every series
// this instance owns.
func loadTokens(path string) ([]uint32, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	var f tokensFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse tokens file %s: %w", path, err)
	}
	return sortedUnique(f.Tokens), nil
}

// saveTokens writes tokens to path atomically: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced, so a
// crash leaves either the old or the new file, never a torn one.
func saveTokens(path string, tokens []uint32) (err error) {
	b, err := json.Marshal(tokensFile{Tokens: tokens})
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create tokens directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary tokens file: %w", err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return errors.Join(fmt.Errorf("write tokens file: %w", err), tmp.Close())
	}
	if err := tmp.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync tokens file: %w", err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close tokens file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename tokens file: %w", err)
	}
	renamed = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open tokens directory: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync tokens directory: %w", err), d.Close())
	}
	return d.Close()
}

// tokenSaver persists the latest tokens off the gossip path: a token
// conflict is resolved inside a memberlist callback, which must not wait
// for the disk. Only the newest pending tokens are written.
type tokenSaver struct {
	path   string
	logger *slog.Logger

	mu      sync.Mutex
	pending []uint32
	wake    chan struct{}
}

func newTokenSaver(path string, logger *slog.Logger) *tokenSaver {
	return &tokenSaver{path: path, logger: logger, wake: make(chan struct{}, 1)}
}

// save schedules tokens to be written; it never blocks.
func (s *tokenSaver) save(tokens []uint32) {
	s.mu.Lock()
	s.pending = tokens
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run writes scheduled tokens until ctx ends, then writes what is left.
func (s *tokenSaver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-s.wake:
			s.flush()
		}
	}
}

func (s *tokenSaver) flush() {
	s.mu.Lock()
	tokens := s.pending
	s.pending = nil
	s.mu.Unlock()
	if tokens == nil {
		return
	}
	if err := saveTokens(s.path, tokens); err != nil {
		// The ring already has the new tokens; after a restart the old
		// file brings the conflict back and it is resolved again.
		s.logger.Error("persist replaced tokens", "path", s.path, "err", err)
	}
}
