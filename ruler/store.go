package ruler

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orrery/orrery/tenant"
)

// StoreName is the rule store's name in the ring's shared gossip state.
const StoreName = "ruler-rules"

// Store holds the rule groups written through the rules configuration
// API. Every ruler holds all of them: a write is kept on the disk of the
// ruler that took it before it is acknowledged, then gossiped to every
// member (ring.Shared), and each ruler writes what it learns to its own
// disk. Per group the last write wins (its time, then its writer's id),
// and a deleted group stays as a tombstone, so any order of merges
// converges and a returning ruler cannot resurrect a deleted group.
//
// Why gossip and local disks rather than a database or object storage:
// Orrery runs without Consul, etcd or a bucket; rule groups are small and
// bounded by the tenants' limits; and the rulers already gossip the ring.
type Store struct {
	path   string // the file the entries are kept in; "" keeps none
	self   string // this ruler's id, the writer of its writes
	limit  int    // most bytes of entries merged from gossip
	now    func() time.Time
	notify chan struct{} // a change, for the ruler's sync

	mu      sync.Mutex
	entries map[storeKey]*storeEntry
	publish func(key string, msg []byte)
}

type storeKey struct{ tenant, namespace, group string }

// storeEntry is one group's latest write. Content is the YAML of one
// rulefmt.RuleGroup, already validated; nil for a deleted group.
type storeEntry struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Content   []byte `json:"content,omitempty"`
	Version   int64  `json:"version"` // unix nanoseconds of the write
	Writer    string `json:"writer"`
}

func (e *storeEntry) key() storeKey { return storeKey{e.Tenant, e.Namespace, e.Group} }

// newer reports whether e wins over o.
func (e *storeEntry) newer(o *storeEntry) bool {
	if e.Version != o.Version {
		return e.Version > o.Version
	}
	if e.Writer != o.Writer {
		return e.Writer > o.Writer
	}
	// Same write: the larger content wins, so two different contents
	// under one version and writer (only a forged message) still agree.
	return string(e.Content) > string(o.Content)
}

// maxStoreBytes bounds what the store holds of gossiped entries: a peer,
// or a forged message, cannot make a ruler hold more.
const maxStoreBytes = 64 << 20

// OpenStore loads the store kept at path (created when absent).
func OpenStore(path, self string) (*Store, error) {
	s := &Store{path: path, self: self, limit: maxStoreBytes, now: time.Now, notify: make(chan struct{}, 1), entries: map[storeKey]*storeEntry{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rule store: %w", err)
	}
	if _, err := s.Merge(b); err != nil {
		return nil, fmt.Errorf("rule store %s: %w", path, err)
	}
	return s, nil
}

// SetPublish sets how a write is gossiped; without it writes stay here.
func (s *Store) SetPublish(publish func(key string, msg []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish = publish
}

// Changed is signalled after the store changed.
func (s *Store) Changed() <-chan struct{} { return s.notify }

// Merge implements ring.Shared: entries newer than the local ones replace
// them and are kept on disk.
func (s *Store) Merge(buf []byte) (bool, error) {
	var in []*storeEntry
	if err := json.Unmarshal(buf, &in); err != nil {
		return false, fmt.Errorf("rule store: decode: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	size := s.sizeLocked()
	for _, e := range in {
		if e == nil || tenant.Validate(e.Tenant) != nil || validNamespace(e.Namespace) != nil || validName(e.Group) != nil || e.Writer == "" {
			continue
		}
		cur := s.entries[e.key()]
		if cur != nil && !e.newer(cur) {
			continue
		}
		grow := entrySize(e)
		if cur != nil {
			grow -= entrySize(cur)
		}
		if size+grow > s.limit {
			continue
		}
		size += grow
		s.entries[e.key()] = e
		changed = true
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			return true, err
		}
		s.signal()
	}
	return changed, nil
}

func entrySize(e *storeEntry) int {
	return len(e.Tenant) + len(e.Namespace) + len(e.Group) + len(e.Content) + len(e.Writer) + 16
}

func (s *Store) sizeLocked() int {
	n := 0
	for _, e := range s.entries {
		n += entrySize(e)
	}
	return n
}

// State implements ring.Shared: every entry, tombstones included.
func (s *Store) State() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.listLocked())
	return b
}

func (s *Store) listLocked() []*storeEntry {
	out := make([]*storeEntry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *storeEntry) int {
		return strings.Compare(a.Tenant+"\x00"+a.Namespace+"\x00"+a.Group, b.Tenant+"\x00"+b.Namespace+"\x00"+b.Group)
	})
	return out
}

// Put writes (content) or deletes (nil) groups of a tenant's namespace,
// durably on this ruler's disk before it returns, then gossips them.
func (s *Store) put(tenantID, namespace string, groups map[string][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	var written []*storeEntry
	for group, content := range groups {
		e := &storeEntry{Tenant: tenantID, Namespace: namespace, Group: group, Content: content, Version: now, Writer: s.self}
		if cur := s.entries[e.key()]; cur != nil && cur.Version >= e.Version {
			// A clock behind the last write still writes after it.
			e.Version = cur.Version + 1
		}
		s.entries[e.key()] = e
		written = append(written, e)
	}
	if err := s.saveLocked(); err != nil {
		return err
	}
	s.signal()
	if s.publish != nil {
		for _, e := range written {
			msg, _ := json.Marshal([]*storeEntry{e})
			s.publish(e.Tenant+"/"+e.Namespace+"/"+e.Group, msg)
		}
	}
	return nil
}

// groups returns the tenant's live groups, by namespace, each namespace's
// groups sorted by name.
func (s *Store) groups(tenantID string) map[string][]*storeEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]*storeEntry{}
	for _, e := range s.listLocked() {
		if e.Tenant == tenantID && e.Content != nil {
			out[e.Namespace] = append(out[e.Namespace], e)
		}
	}
	return out
}

// tenants returns the tenants with live groups.
func (s *Store) tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range s.entries {
		if e.Content != nil {
			seen[e.Tenant] = true
		}
	}
	var out []string
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (s *Store) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// saveLocked writes every entry to a temporary file, syncs it and renames
// it over the store's file: a crash leaves the old or the new version.
func (s *Store) saveLocked() error {
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(s.listLocked())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("rule store: %w", err)
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("rule store: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("rule store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("rule store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("rule store: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("rule store: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
