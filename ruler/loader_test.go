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

func groupNames(l *loader, file string) []string {
	var names []string
	for _, g := range l.groups(file) {
		names = append(names, g.Name)
	}
	return names
}

// A file that stops parsing is refused with its file, line and reason,
// once, and its last good version keeps being loaded; a file never good
// loads nothing.
func TestLoaderKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	var refused []error
	l := newLoader(dir, "team-a", parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}

	write("alerts.yaml", "groups:\n- name: good\n  rules:\n  - alert: Down\n    expr: up == 0\n")
	l.read([]string{"alerts.yaml"}, 0, 0)
	require.Equal(t, []string{"good"}, groupNames(l, "alerts.yaml"))
	require.Empty(t, refused)

	write("alerts.yaml", "groups:\n- name: good\n  rules:\n  - alert: Down\n    expr: up == (\n")
	for range 3 {
		l.read([]string{"alerts.yaml"}, 0, 0)
		require.Equal(t, []string{"good"}, groupNames(l, "alerts.yaml"), "the previous version keeps running")
	}
	require.Len(t, refused, 1, "reported once while the file stays bad")
	require.Contains(t, refused[0].Error(), "alerts.yaml")
	require.NotContains(t, refused[0].Error(), dir, "no server path")
	require.Contains(t, refused[0].Error(), "5:", "the line of the bad expression")
	require.Contains(t, refused[0].Error(), "team-a")

	write("never.yaml", "groups: [{name: x, rules: [{record: r, expr: 'sum('}]}]\n")
	l.read([]string{"alerts.yaml", "never.yaml"}, 0, 0)
	require.Empty(t, groupNames(l, "never.yaml"))
	require.Len(t, refused, 2)

	// oneGroup loads one group of the last read.
	rgs, errs := oneGroup{l: l, name: "good"}.Load("alerts.yaml", false, model.UTF8Validation)
	require.Empty(t, errs)
	require.Len(t, rgs.Groups, 1)
}

// Groups past the tenant's limit, and groups with too many rules, are
// refused by name; the rest load.
func TestLoaderLimits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ns.yaml"), []byte(`groups:
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
	l := newLoader(dir, "t", parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	l.read([]string{"ns.yaml"}, 2, 2)
	require.Equal(t, []string{"a", "c"}, groupNames(l, "ns.yaml"))
	require.Len(t, refused, 2)
	require.Contains(t, refused[0].Error(), `"big" has 3 rules`)
	require.Contains(t, refused[1].Error(), `"d" is past`)

	l.read([]string{"ns.yaml"}, 0, 0)
	require.Equal(t, []string{"a", "big", "c", "d"}, groupNames(l, "ns.yaml"))
}
