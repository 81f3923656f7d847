package mixin

import (
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// The six dashboards issue 13 asks for; a dashboard lost or renamed fails
// here rather than in a user's Grafana.
var wantDashboards = []string{
	"orrery-ingester.json", "orrery-limits.json", "orrery-reads.json",
	"orrery-ring.json", "orrery-rules.json", "orrery-writes.json",
}

// TestDashboards: every dashboard parses, is one Grafana 10/11 imports as
// it is (schema 39, a Prometheus data source variable that every query
// uses), has unique panel ids, only timeseries and stat panels (in rows),
// every query and variable selector parses as PromQL once Grafana's
// variables are replaced, and every variable is used.
func TestDashboards(t *testing.T) {
	dashboards, err := Dashboards()
	require.NoError(t, err)
	var files []string
	uids := map[string]string{}
	p := parser.NewParser(parser.Options{})
	for _, d := range dashboards {
		files = append(files, d.File)
		t.Run(d.File, func(t *testing.T) {
			require.NotEmpty(t, d.UID)
			require.NotContains(t, uids, d.UID, "uid also used by %s", uids[d.UID])
			uids[d.UID] = d.File
			require.Equal(t, 39, d.SchemaVersion)
			require.NotEmpty(t, d.Templating.List)
			ds := d.Templating.List[0]
			require.Equal(t, "datasource", ds.Name)
			require.Equal(t, "datasource", ds.Type)
			require.JSONEq(t, `"prometheus"`, string(ds.Query))
			require.LessOrEqual(t, len(d.Templating.List), 3, "few variables: datasource, job and at most tenant")

			ids := map[int]string{}
			var raw strings.Builder
			for _, panel := range d.AllPanels() {
				require.NotZero(t, panel.ID, "panel %q has no id", panel.Title)
				require.NotContains(t, ids, panel.ID, "panel %q reuses the id of %q", panel.Title, ids[panel.ID])
				ids[panel.ID] = panel.Title
				require.NotEmpty(t, panel.Title, "panel %d has no title", panel.ID)
				if panel.Type == "row" {
					require.Empty(t, panel.Targets, "row %q", panel.Title)
					continue
				}
				require.Contains(t, []string{"timeseries", "stat"}, panel.Type, "panel %q", panel.Title)
				require.NotEmpty(t, panel.Targets, "panel %q has no query", panel.Title)
				require.Equal(t, &Datasource{Type: "prometheus", UID: "${datasource}"}, panel.Datasource, "panel %q", panel.Title)
				for _, target := range panel.Targets {
					require.Equal(t, panel.Datasource, target.Datasource, "panel %q %s", panel.Title, target.RefID)
					require.NotEmpty(t, target.Expr, "panel %q %s", panel.Title, target.RefID)
					raw.WriteString(target.Expr)
				}
			}

			queries, err := d.Queries()
			require.NoError(t, err)
			require.NotEmpty(t, queries)
			for _, q := range queries {
				_, err := MetricNames(p, q.Expr)
				require.NoError(t, err, "%s: %s", q.Panel, q.Expr)
			}
			variables, err := d.VariableQueries()
			require.NoError(t, err)
			for _, v := range variables {
				_, err := MetricNames(p, v.Selector)
				require.NoError(t, err, "variable %s", v.Variable)
				require.Contains(t, raw.String(), "$"+v.Variable, "variable %s is used by a panel", v.Variable)
			}
		})
	}
	require.Equal(t, wantDashboards, files)
}

// TestQueriesReplaceVariables: what Queries sends is what Grafana would,
// and a variable the dashboard does not define is refused instead of
// reaching Prometheus as text.
func TestQueriesReplaceVariables(t *testing.T) {
	d := Dashboard{File: "x.json"}
	d.Templating.List = []Variable{{Name: "datasource", Type: "datasource"}, {Name: "tenant", Type: "query"}}
	d.Panels = []Panel{{ID: 1, Title: "row", Type: "row", Panels: []Panel{{ID: 2, Targets: []Target{{
		RefID: "A", Expr: `label_replace(rate(m{tenant=~"$tenant", x=~"${tenant:regex}", y=~"[[tenant]]"}[$__rate_interval]), "t", "$1", "a", "(.*)")`,
	}}}}}}
	qs, err := d.Queries()
	require.NoError(t, err)
	require.Equal(t, []Query{{Panel: `x.json: "" A`,
		Expr: `label_replace(rate(m{tenant=~".*", x=~".*", y=~".*"}[1m]), "t", "$1", "a", "(.*)")`}}, qs)

	d.Panels[0].Panels[0].Targets[0].Expr = `up{job=~"$job"}`
	_, err = d.Queries()
	require.ErrorContains(t, err, "undefined variables [job]")
}

// TestAlerts: alerts.yaml loads as Prometheus loads a rule file (strict
// fields, valid expressions and templates), every rule is an alert with a
// severity, a summary and a runbook_url into docs/operations.md whose
// anchor is the alert's own section there, and every expression names
// its metrics exactly (so the integration test can check they exist).
func TestAlerts(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(Alerts, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	ops, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	anchors := HeadingAnchors(string(ops))
	require.True(t, anchors["runbooks"], `docs/operations.md has a "Runbooks" section`)

	names := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: only alerting rules", g.Name)
			require.False(t, names[r.Alert], "alert %s defined twice", r.Alert)
			names[r.Alert] = true
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)

			u, err := url.Parse(r.Annotations["runbook_url"])
			require.NoError(t, err, r.Alert)
			require.True(t, strings.HasSuffix(u.Path, "/docs/operations.md"), "%s: runbook_url %s", r.Alert, u)
			require.Equal(t, strings.ToLower(r.Alert), u.Fragment, "%s: the anchor is the alert's own runbook", r.Alert)
			require.True(t, anchors[u.Fragment], "%s: docs/operations.md has no heading with anchor #%s", r.Alert, u.Fragment)

			_, err = MetricNames(p, r.Expr)
			require.NoError(t, err, r.Alert)
		}
	}
	require.NotEmpty(t, names)
}

// TestRunbookLinks: the runbooks link to the rest of docs/operations.md
// and to other documents instead of repeating them; every such link must
// land on a heading that exists.
func TestRunbookLinks(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	link := regexp.MustCompile(`\]\(([a-z-]*\.md)?#([a-z0-9_-]+)\)`)
	links := link.FindAllStringSubmatch(string(ops), -1)
	require.NotEmpty(t, links)
	for _, l := range links {
		doc := "operations.md"
		if l[1] != "" {
			doc = l[1]
		}
		text, err := os.ReadFile("../../docs/" + doc)
		require.NoError(t, err, l[0])
		require.True(t, HeadingAnchors(string(text))[l[2]], "%s: docs/%s has no heading #%s", l[0], doc, l[2])
	}
}

// TestHeadingAnchors: GitHub's anchors, and headings inside code fences
// are not headings.
func TestHeadingAnchors(t *testing.T) {
	got := HeadingAnchors("# Operating an Orrery cluster\n## Scaling in\n### OrreryWALCorruption\n```sh\n# not a heading\n```\n## `/ring`: members, health\n")
	require.Equal(t, map[string]bool{
		"operating-an-orrery-cluster": true, "scaling-in": true, "orrerywalcorruption": true, "ring-members-health": true,
	}, got)
}
