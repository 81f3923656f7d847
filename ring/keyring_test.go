package ring

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func keyFile(t *testing.T, keys ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gossip.key")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(keys, "\n")+"\n"), 0o600))
	return path
}

func key(b byte, n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), n)))
}

func TestLoadKeyring(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		kr, err := loadKeyring(keyFile(t, key('a', n), "", key('b', 16)))
		require.NoError(t, err, n)
		require.Len(t, kr.GetKeys(), 2)
		require.Equal(t, []byte(strings.Repeat("a", n)), kr.GetPrimaryKey(), "the first line encrypts")
	}
	for name, content := range map[string][]string{
		"empty":      {""},
		"not base64": {"not base64!"},
		"15 bytes":   {key('a', 15)},
		"33 bytes":   {key('a', 33)},
	} {
		_, err := loadKeyring(keyFile(t, content...))
		require.Error(t, err, name)
	}
	_, err := loadKeyring(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)

	cfg := testConfig()
	cfg.KeyFile = keyFile(t, key('a', 15))
	require.ErrorContains(t, cfg.Validate(), "-memberlist.key-file")
}

// TestGossipKeyKeepsStrangersOut: members sharing a key form a ring; a
// member without a key, or with another key, is never listed by them and
// sees nobody. A member that also holds a second key (the first step of a
// rotation) joins.
func TestGossipKeyKeepsStrangersOut(t *testing.T) {
	t.Parallel()
	good := keyFile(t, key('k', 32))
	withKey := func(path string) func(*Config, *Self) {
		return func(c *Config, _ *Self) { c.KeyFile = path }
	}
	m1 := startMember(t, "ingester-1", "", withKey(good))
	m2 := startMember(t, "ingester-2", m1.GossipAddr(), withKey(good))
	requireConverged(t, []string{"ingester-1", "ingester-2"}, m1, m2)

	plain := startMember(t, "no-key", m1.GossipAddr(), nil)
	wrong := startMember(t, "wrong-key", m1.GossipAddr(), withKey(keyFile(t, key('x', 32))))
	// Joining after the strangers tried proves gossip went on meanwhile.
	m3 := startMember(t, "ingester-3", m1.GossipAddr(), withKey(keyFile(t, key('k', 32), key('n', 32))))
	requireConverged(t, []string{"ingester-1", "ingester-2", "ingester-3"}, m1, m2, m3)

	for _, m := range []*Member{m1, m2, m3} {
		require.Nil(t, entry(m, "no-key"))
		require.Nil(t, entry(m, "wrong-key"))
		require.Equal(t, 3, m.ml.Load().NumMembers())
	}
	for _, stranger := range []*Member{plain, wrong} {
		require.Nil(t, entry(stranger, "ingester-1"), "a stranger reads no ring")
		require.Equal(t, 1, stranger.ml.Load().NumMembers())
	}
}
