package ruler

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/tenant"
)

// StoreName is the rule store's name in the ring's shared gossip state.
const StoreName = "ruler-rules"

// Store holds the rule groups written through the rules configuration
// API. Every ruler holds all of them: a write is kept on the disk of the
// ruler that took it before it is acknowledged, then gossiped to every
// member (ring.Shared), and each ruler writes what it learns to its own
// disk. Per group the last write wins (its time, then its writer's id),
// and a deleted group stays as a tombstone for TombstoneTTL, so any order
// of merges converges and a ruler away for less than that cannot bring a
// deleted group back.
//
// Why gossip and local disks rather than a database or object storage:
// Orrery runs without Consul, etcd or a bucket; rule groups are small;
// and the rulers already gossip the ring. The whole store travels in
// memberlist's push/pull, whose messages are bounded (20 MiB, ring
// included), so the store is bounded well below that: per tenant
// (maxTenantStoreBytes, tombstones included) and in all (maxStoreBytes).
type Store struct {
	path   string // the file the entries are kept in; "" keeps none
	self   string // this ruler's id, the writer of its writes
	logger *slog.Logger
	now    func() time.Time
	notify chan struct{} // a change, for the ruler's sync
	// tenantBytes and totalBytes bound what writes through the API may
	// take; hardBytes bounds what merges from gossip may, a margin above
	// the total so that writes racing on two rulers still converge.
	tenantBytes, totalBytes, hardBytes int

	mu      sync.Mutex
	entries map[storeKey]*storeEntry
	publish func(key string, msg []byte)
}

type storeKey struct{ tenant, namespace, group string }

// storeEntry is one group's latest write: Content is the YAML of one
// rulefmt.RuleGroup, validated; a deleted group has Deleted set and no
// content.
type storeEntry struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Content   string `json:"content,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
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
	// The same write twice (only a forged message): a deletion wins, then
	// the larger content, so every ruler keeps the same one.
	if e.Deleted != o.Deleted {
		return e.Deleted
	}
	return e.Content > o.Content
}

func entrySize(e *storeEntry) int {
	return len(e.Tenant) + len(e.Namespace) + len(e.Group) + len(e.Content) + len(e.Writer) + 64
}

const (
	// maxTenantStoreBytes bounds one tenant's groups through the API,
	// tombstones included.
	maxTenantStoreBytes = 2 << 20
	// maxStoreBytes bounds every tenant's; maxStoreHardBytes what gossip
	// may bring. Both keep the store, with the ring, inside memberlist's
	// 20 MiB push/pull message.
	maxStoreBytes     = 8 << 20
	maxStoreHardBytes = 12 << 20
	// TombstoneTTL is how long a deletion is remembered.
	TombstoneTTL = 7 * 24 * time.Hour
	// maxClockSkew is how far in the future a gossiped write may be: a
	// forged or wrong clock must not pin a group forever.
	maxClockSkew = time.Hour
)

// OpenStore loads the store kept at path (created when absent). A file it
// cannot read is moved aside, loudly, and the store starts empty: the
// other rulers' gossip brings the groups back.
func OpenStore(path, self string, logger *slog.Logger) (*Store, error) {
	s := &Store{path: path, self: self, logger: logger, now: time.Now, notify: make(chan struct{}, 1), entries: map[storeKey]*storeEntry{},
		tenantBytes: maxTenantStoreBytes, totalBytes: maxStoreBytes, hardBytes: maxStoreHardBytes}
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
	var in []*storeEntry
	if err := json.Unmarshal(b, &in); err != nil {
		aside := path + ".corrupt"
		logger.Error("rule store file unreadable: moved aside, starting empty; the other rulers' groups come back by gossip, groups only this ruler held are lost", "path", path, "aside", aside, "err", err)
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("rule store: moving the unreadable %s aside: %w", path, err)
		}
		return s, nil
	}
	// What this ruler stored was checked when it came: loaded whole, so
	// that no acknowledged write is lost to a bound.
	for _, e := range in {
		if e != nil && s.valid(e) == nil {
			s.entries[e.key()] = e
		}
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

// valid checks an entry as a write through the API is checked.
func (s *Store) valid(e *storeEntry) error {
	if err := tenant.Validate(e.Tenant); err != nil {
		return err
	}
	if err := validNamespace(e.Namespace); err != nil {
		return err
	}
	if err := validName(e.Group); err != nil {
		return err
	}
	if e.Writer == "" {
		return errors.New("no writer")
	}
	if e.Deleted {
		if e.Content != "" {
			return errors.New("a deletion with content")
		}
		return nil
	}
	if len(e.Content) > maxRuleGroupBytes {
		return fmt.Errorf("group over %d bytes", maxRuleGroupBytes)
	}
	_, name, err := validateGroup([]byte(e.Content))
	if err != nil {
		return err
	}
	if name != e.Group {
		return fmt.Errorf("group %q stored as %q", name, e.Group)
	}
	return nil
}

// Merge implements ring.Shared: valid entries newer than the local ones
// replace them and are kept on disk.
func (s *Store) Merge(buf []byte) (bool, error) {
	var in []*storeEntry
	if err := json.Unmarshal(buf, &in); err != nil {
		return false, fmt.Errorf("rule store: decode: %w", err)
	}
	now := s.now()
	// Only entries newer than the local ones are checked, outside the
	// lock (parsing a group's rules takes time): push/pull brings the
	// whole state every few seconds, mostly what is already here.
	s.mu.Lock()
	var candidates []*storeEntry
	for _, e := range in {
		if e == nil || e.Version > now.Add(maxClockSkew).UnixNano() || (e.Deleted && e.Version < now.Add(-TombstoneTTL).UnixNano()) {
			continue
		}
		if cur := s.entries[e.key()]; cur == nil || e.newer(cur) {
			candidates = append(candidates, e)
		}
	}
	s.mu.Unlock()
	var ok []*storeEntry
	for _, e := range candidates {
		if s.valid(e) == nil {
			ok = append(ok, e)
		}
	}
	if len(ok) == 0 {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.copyLocked()
	size := sizeOf(next, "")
	changed := false
	for _, e := range ok {
		cur := next[e.key()]
		if cur != nil && !e.newer(cur) {
			continue
		}
		grow := entrySize(e)
		if cur != nil {
			grow -= entrySize(cur)
		}
		if size+grow > s.hardBytes {
			continue
		}
		size += grow
		next[e.key()] = e
		changed = true
	}
	if !changed {
		return false, nil
	}
	if err := s.saveLocked(next); err != nil {
		return false, err
	}
	s.entries = next
	s.signal()
	return true, nil
}

func (s *Store) copyLocked() map[storeKey]*storeEntry {
	out := make(map[storeKey]*storeEntry, len(s.entries))
	now := s.now()
	for k, e := range s.entries {
		if e.Deleted && e.Version < now.Add(-TombstoneTTL).UnixNano() {
			continue // forgotten
		}
		out[k] = e
	}
	return out
}

// sizeOf is the size of entries, of one tenant's when tenantID is set.
func sizeOf(entries map[storeKey]*storeEntry, tenantID string) int {
	n := 0
	for _, e := range entries {
		if tenantID == "" || e.Tenant == tenantID {
			n += entrySize(e)
		}
	}
	return n
}

// State implements ring.Shared: every entry, tombstones included.
func (s *Store) State() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(list(s.entries))
	return b
}

func list(entries map[storeKey]*storeEntry) []*storeEntry {
	out := make([]*storeEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *storeEntry) int {
		return strings.Compare(a.Tenant+"\x00"+a.Namespace+"\x00"+a.Group, b.Tenant+"\x00"+b.Namespace+"\x00"+b.Group)
	})
	return out
}

// put writes (content) or deletes (nil) groups of a tenant's namespace:
// within the tenant's and the store's bounds, durably on this ruler's
// disk before it returns, then gossiped. Nothing changes when it fails.
func (s *Store) put(tenantID, namespace string, groups map[string]*string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.copyLocked()
	now := s.now().UnixNano()
	var written []*storeEntry
	for group, content := range groups {
		e := &storeEntry{Tenant: tenantID, Namespace: namespace, Group: group, Version: now, Writer: s.self}
		if content == nil {
			e.Deleted = true
		} else {
			e.Content = *content
		}
		if cur := next[e.key()]; cur != nil && cur.Version >= e.Version {
			// A clock behind the last write still writes after it;
			// gossip refuses versions far ahead, so this cannot wrap.
			e.Version = cur.Version + 1
		}
		next[e.key()] = e
		written = append(written, e)
	}
	if n := sizeOf(next, tenantID); n > s.tenantBytes && n > sizeOf(s.entries, tenantID) {
		return apierr.New(apierr.TooLarge, "the tenant's rule groups through the API would take %d bytes, deletions remembered for %s included; the bound is %d: delete or shrink groups", n, TombstoneTTL, s.tenantBytes)
	}
	if n := sizeOf(next, ""); n > s.totalBytes && n > sizeOf(s.entries, "") {
		return apierr.New(apierr.TooLarge, "the rule store is full (%d bytes of every tenant's groups, bound %d)", n, s.totalBytes)
	}
	if err := s.saveLocked(next); err != nil {
		s.logger.Error("rule store: a write could not be kept", "err", err)
		return apierr.New(apierr.Unavailable, "the rule group could not be stored on this ruler's disk; nothing changed, retry")
	}
	s.entries = next
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
	for _, e := range list(s.entries) {
		if e.Tenant == tenantID && !e.Deleted {
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
		if !e.Deleted {
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

// saveLocked writes entries to a temporary file, syncs it and renames it
// over the store's file: a crash leaves the old or the new version.
func (s *Store) saveLocked(entries map[storeKey]*storeEntry) error {
	if s.path == "" {
		return nil
	}
	b, err := json.Marshal(list(entries))
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
