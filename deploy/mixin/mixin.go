package mixin

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

//go:embed dashboards/*.json
var dashboardFiles embed.FS

// Alerts is alerts.yaml, the Prometheus rule file of alerts for Orrery.
//
//go:embed alerts.yaml
var Alerts []byte

// Dashboard is the part of a Grafana dashboard the checks read.
type Dashboard struct {
	File          string `json:"-"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a template variable. Query is a string for a datasource
// variable and an object with the query for a query variable.
type Variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

// Panel is a panel, or a row holding panels when it is collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// Datasource is a panel's or a target's data source reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Dashboards reads every dashboard in dashboards/, strictly: a field the
// checks read with the wrong type is an error.
func Dashboards() ([]Dashboard, error) {
	names, err := fs.Glob(dashboardFiles, "dashboards/*.json")
	if err != nil {
		return nil, err
	}
	var out []Dashboard
	for _, name := range names {
		raw, err := dashboardFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.File = path.Base(name)
		out = append(out, d)
	}
	return out, nil
}

// AllPanels is every panel of d, those inside rows included.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Query is one panel query with Grafana's variables replaced.
type Query struct {
	Panel string
	Expr  string
}

// builtins are the values Grafana's own variables take in the checks: a
// range a rate needs at least two samples in.
var builtins = map[string]string{"__rate_interval": "1m", "__interval": "1m"}

// variableRef matches $name, ${name}, ${name:format} and [[name]]. A name
// starts with a letter or an underscore, so label_replace's "$1" is no
// variable.
var variableRef = regexp.MustCompile(`\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]`)

// Queries returns every panel query of d, with the dashboard's label
// variables replaced by ".*" (what "All" sends: they are only used in =~
// matchers) and Grafana's intervals by builtins. A variable the dashboard
// does not define is an error: Grafana would send it as it is.
func (d Dashboard) Queries() ([]Query, error) {
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "datasource" {
			vars[v.Name] = ".*"
		}
	}
	maps := []map[string]string{builtins, vars}
	var out []Query
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			expr, err := substitute(t.Expr, maps...)
			if err != nil {
				return nil, fmt.Errorf("%s: panel %d %q: %w", d.File, p.ID, p.Title, err)
			}
			out = append(out, Query{Panel: fmt.Sprintf("%s: %q %s", d.File, p.Title, t.RefID), Expr: expr})
		}
	}
	return out, nil
}

func substitute(s string, maps ...map[string]string) (string, error) {
	var missing []string
	out := variableRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		for _, vals := range maps {
			if v, ok := vals[name]; ok {
				return v
			}
		}
		missing = append(missing, name)
		return ref
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("undefined variables %v in %s", missing, s)
	}
	return out, nil
}

// labelValues matches Grafana's label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// VariableQuery is a query variable's label_values(Selector, Label): the
// values of Label on the series Selector matches.
type VariableQuery struct {
	Variable, Selector, Label string
}

// VariableQueries returns the query of each query variable of d.
func (d Dashboard) VariableQueries() ([]VariableQuery, error) {
	var out []VariableQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			return nil, fmt.Errorf("%s: variable %s: %w", d.File, v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			return nil, fmt.Errorf("%s: variable %s: %q is not label_values(selector, label)", d.File, v.Name, q.Query)
		}
		out = append(out, VariableQuery{Variable: v.Name, Selector: m[1], Label: m[2]})
	}
	return out, nil
}

// MetricNames returns the metric names expr selects, sorted; a selector
// without an exact name is an error, since nothing could check it exists.
func MetricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var problem error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := ""
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			problem = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	if problem != nil {
		return nil, problem
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// HeadingAnchors returns the anchors GitHub gives a Markdown document's
// headings: lower case, spaces to hyphens, everything but ASCII letters,
// digits, hyphens and underscores dropped (Orrery's docs have ASCII
// headings; GitHub would keep other letters).
func HeadingAnchors(markdown string) map[string]bool {
	out := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}
