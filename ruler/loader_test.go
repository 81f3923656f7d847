package ruler

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
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

// A tenant's rule file may hold PrometheusRule objects as kube-prometheus
// has them: one, several YAML documents, or `kubectl get -o yaml`'s List.
// Their groups load as if written as a rule file; another kind, or a bad
// expression inside, is refused and names the problem.
func TestLoaderReadsPrometheusRules(t *testing.T) {
	dir := t.TempDir()
	var refused []error
	l := newLoader(dir, "team-a", parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler), func(err error) { refused = append(refused, err) })
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	const one = `apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: node
  namespace: monitoring
spec:
  groups:
  - name: node.rules
    interval: 30s
    rules:
    - record: instance:node_load1:sum
      expr: sum by (instance) (node_load1)
  - name: node.alerts
    rules:
    - alert: HighLoad
      expr: node_load1 > 1.5
      for: 30s
      labels: {severity: warning}
`
	write("one.yaml", one)
	// helm template's empty documents first, then two objects whose
	// groups share names: each is named after its object.
	write("docs.yaml", "---\n# Source: a\n---\n"+one+"---\n"+strings.ReplaceAll(one, "name: node\n", "name: other\n"))
	write("list.yaml", "apiVersion: v1\nkind: List\nitems:\n- "+strings.ReplaceAll(strings.TrimSuffix(one, "\n"), "\n", "\n  ")+"\n")
	l.read([]string{"one.yaml", "docs.yaml", "list.yaml"}, 0, 0)
	require.Empty(t, refused)
	require.Equal(t, []string{"node.rules", "node.alerts"}, groupNames(l, "one.yaml"))
	require.Equal(t, []string{"monitoring/node/node.rules", "monitoring/node/node.alerts", "monitoring/other/node.rules", "monitoring/other/node.alerts"}, groupNames(l, "docs.yaml"))
	require.Equal(t, []string{"node.rules", "node.alerts"}, groupNames(l, "list.yaml"))
	g := l.groups("one.yaml")[0]
	require.Equal(t, "instance:node_load1:sum", g.Rules[0].Record)
	require.Equal(t, "30s", g.Interval.String())

	// An anchor in the metadata, used in a rule.
	write("anchor.yaml", strings.Replace(strings.Replace(one, "  name: node\n", "  name: node\n  labels: &l {team: infra}\n", 1), "      labels: {severity: warning}", "      labels: *l", 1))
	l.read([]string{"anchor.yaml"}, 0, 0)
	require.Empty(t, refused)
	require.Equal(t, "infra", l.groups("anchor.yaml")[1].Rules[0].Labels["team"])

	write("other.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: {}\n")
	write("wrongapi.yaml", strings.Replace(one, "monitoring.coreos.com/v1", "apps/v1", 1))
	write("bad.yaml", strings.ReplaceAll(one, "node_load1 > 1.5", "node_load1 >"))
	l.read([]string{"one.yaml", "other.yaml", "bad.yaml", "wrongapi.yaml"}, 0, 0)
	require.Len(t, refused, 3)
	all := refused[0].Error() + refused[1].Error() + refused[2].Error()
	require.Contains(t, all, `"ConfigMap"`)
	require.Contains(t, all, "HighLoad")
	require.Contains(t, all, `apps/v1 "PrometheusRule"`)
	require.Empty(t, groupNames(l, "other.yaml"))
	require.Empty(t, groupNames(l, "bad.yaml"))
}

// FuzzPrometheusRuleGroups: any file content is turned into groups or
// refused, never a panic, and what it turns out is YAML rulefmt reads.
func FuzzPrometheusRuleGroups(f *testing.F) {
	f.Add([]byte("kind: PrometheusRule\nspec:\n  groups:\n  - name: a\n    rules:\n    - record: r\n      expr: up\n"))
	f.Add([]byte("kind: List\nitems:\n- kind: PrometheusRule\n  spec: {groups: [{name: a, rules: []}]}\n---\nkind: PrometheusRule\n"))
	f.Add([]byte("groups: []\n"))
	f.Add([]byte("kind: [\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		out, ok, err := prometheusRuleGroups(content)
		if !ok || err != nil {
			return
		}
		_, _ = rulefmt.Parse(out, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	})
}
