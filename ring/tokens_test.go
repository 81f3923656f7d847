package ring

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateTokens(t *testing.T) {
	// A source that first returns taken and repeated values.
	seq := []uint32{5, 5, 7, 9, 7, 11, 13}
	next := func() uint32 { v := seq[0]; seq = seq[1:]; return v }
	got := generateTokens(3, map[uint32]struct{}{7: {}}, next)
	require.Equal(t, []uint32{5, 9, 11}, got)
}

func TestTokensPersistAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tokens.json")
	got, err := loadTokens(path)
	require.NoError(t, err)
	require.Nil(t, got, "a missing file means no tokens yet")

	want := []uint32{1, 2, 3, 1 << 31, 1<<32 - 1}
	require.NoError(t, saveTokens(path, want))
	got, err = loadTokens(path)
	require.NoError(t, err)
	require.Equal(t, want, got)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	require.NoError(t, os.WriteFile(path, []byte(`{"tokens":[3,1,3]}`), 0o644))
	got, err = loadTokens(path)
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 3}, got, "hand-edited files are normalized")

	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o644))
	_, err = loadTokens(path)
	require.ErrorContains(t, err, "parse tokens file")
}

func TestMemberTokensSurviveRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	first := startMember(t, "ingester-1", "", func(_ *Config, s *Self) { s.TokensFile = path })
	tokens := ownEntry(first).Tokens
	require.Len(t, tokens, 128)
	onDisk, err := loadTokens(path)
	require.NoError(t, err)
	require.Equal(t, tokens, onDisk)
	stopMember(t, first)

	second := startMember(t, "ingester-1", "", func(_ *Config, s *Self) { s.TokensFile = path })
	require.Equal(t, tokens, ownEntry(second).Tokens, "tokens reloaded, not drawn again")

	// Raising -ring.num-tokens keeps the old tokens and adds new ones.
	stopMember(t, second)
	third := startMember(t, "ingester-1", "", func(c *Config, s *Self) { s.TokensFile = path; c.NumTokens = 130 })
	grown := ownEntry(third).Tokens
	require.Len(t, grown, 130)
	for _, tk := range tokens {
		_, ok := slices.BinarySearch(grown, tk)
		require.True(t, ok)
	}
}
