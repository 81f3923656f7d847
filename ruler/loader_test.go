package ruler

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func loadNames(t *testing.T, l *loader, file string) []string {
	t.Helper()
	rgs, errs := l.Load(file, false, model.UTF8Validation)
	require.Empty(t, errs, "the loader never fails the tenant's other files")
	var names []string
	for _, g := range rgs.Groups {
		names = append(names, g.Name)
	}
	return names
}

// A file that stops parsing is refused with its file, line and reason,
// and its last good version keeps being loaded; a file never good loads
// nothing.
func TestLoaderKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "alerts.yaml")
	var refused []error
	l := newLoader("", "team-a", parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	l.startSync(func(string, string) bool { return true }, 0, 0)

	require.NoError(t, os.WriteFile(file, []byte("groups:\n- name: good\n  rules:\n  - alert: Down\n    expr: up == 0\n"), 0o644))
	require.Equal(t, []string{"good"}, loadNames(t, l, file))
	require.Empty(t, refused)

	require.NoError(t, os.WriteFile(file, []byte("groups:\n- name: good\n  rules:\n  - alert: Down\n    expr: up == (\n"), 0o644))
	require.Equal(t, []string{"good"}, loadNames(t, l, file), "the previous version keeps running")
	require.Len(t, refused, 1)
	require.Contains(t, refused[0].Error(), "alerts.yaml")
	require.Contains(t, refused[0].Error(), "5:", "the line of the bad expression")
	require.Contains(t, refused[0].Error(), "team-a")

	never := filepath.Join(dir, "never.yaml")
	require.NoError(t, os.WriteFile(never, []byte("groups: [{name: x, rules: [{record: r, expr: 'sum('}]}]\n"), 0o644))
	require.Empty(t, loadNames(t, l, never))
	require.Len(t, refused, 2)
}

// Groups past the tenant's limit, and groups with too many rules, are
// refused by name; the rest load. Ownership filters what is left.
func TestLoaderLimitsAndOwnership(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ns.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`groups:
- name: a
  rules: [{record: a, expr: up}]
- name: big
  rules: [{record: b1, expr: up}, {record: b2, expr: up}, {record: b3, expr: up}]
- name: c
  rules: [{record: c, expr: up}]
- name: d
  rules: [{record: d, expr: up}]
`), 0o644))
	var refused []error
	l := newLoader("", "t", parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	l.startSync(func(string, string) bool { return true }, 2, 2)
	require.Equal(t, []string{"a", "c"}, loadNames(t, l, file))
	require.Len(t, refused, 2)
	require.Contains(t, refused[0].Error(), `"big" has 3 rules`)
	require.Contains(t, refused[1].Error(), `"d" is past`)

	refused = nil
	l.startSync(func(ns, g string) bool { return ns == "ns" && g == "c" }, 0, 0)
	require.Equal(t, []string{"c"}, loadNames(t, l, file))
	require.Empty(t, refused)
}
