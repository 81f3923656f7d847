package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/tenant"
)

// ConfigPath is where the rules configuration API is served, as Mimir
// serves it: what `mimirtool rules` and `cortextool rules` speak.
const ConfigPath = "/prometheus/config/v1/rules"

// maxRuleGroupBytes bounds one posted rule group: the store's groups all
// travel in gossip (Store).
const maxRuleGroupBytes = 256 << 10

// ConfigAPI serves the rules configuration API over the store:
//
//	GET    /prometheus/config/v1/rules                      every namespace's groups
//	GET    /prometheus/config/v1/rules/{namespace}          one namespace's groups
//	GET    /prometheus/config/v1/rules/{namespace}/{group}  one group
//	POST   /prometheus/config/v1/rules/{namespace}          create or replace a group (its YAML)
//	DELETE /prometheus/config/v1/rules/{namespace}/{group}  delete a group
//	DELETE /prometheus/config/v1/rules/{namespace}          delete a namespace
//
// Answers are YAML, as Mimir's; writes answer 202 once durable on this
// ruler, and reach every ruler by gossip within seconds. Only groups
// written through the API are listed and changed here; rule files are
// the operator's.
func (r *Ruler) ConfigAPI(logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := r.serveConfig(w, req); err != nil {
			code := apierr.HTTPStatus(err)
			if code >= 500 {
				logger.Error("rules configuration API", "path", req.URL.Path, "err", err)
			}
			http.Error(w, err.Error(), code)
		}
	})
}

func (r *Ruler) serveConfig(w http.ResponseWriter, req *http.Request) error {
	id, err := tenant.FromContext(req.Context())
	if err != nil {
		return apierr.New(apierr.Unauthorized, "%s", err)
	}
	if r.store == nil {
		return apierr.New(apierr.Unavailable, "this ruler has no rule store")
	}
	namespace, group, err := configPath(req.URL.EscapedPath())
	if err != nil {
		return err
	}
	switch {
	case req.Method == http.MethodGet:
		return r.getConfig(w, id, namespace, group)
	case req.Method == http.MethodPost && namespace != "" && group == "":
		return r.postGroup(w, req, id, namespace)
	case req.Method == http.MethodDelete && namespace != "":
		return r.deleteConfig(w, id, namespace, group)
	default:
		return apierr.New(apierr.MethodNotAllowed, "%s %s: use GET, POST to a namespace, or DELETE a namespace or a group", req.Method, req.URL.Path)
	}
}

// configPath splits the path after ConfigPath into its unescaped
// namespace and group, either possibly "".
func configPath(escaped string) (namespace, group string, err error) {
	rest, ok := strings.CutPrefix(escaped, ConfigPath)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return "", "", apierr.New(apierr.NotFound, "no such path %s", escaped)
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	if rest == "" || rest == "/" {
		return "", "", nil
	}
	if len(parts) > 2 {
		return "", "", apierr.New(apierr.NotFound, "no such path %s: at most a namespace and a group", escaped)
	}
	names := make([]string, 2)
	for k, p := range parts {
		n, err := url.PathUnescape(p)
		if err != nil {
			return "", "", apierr.New(apierr.BadData, "path element %q: %s", p, err)
		}
		check := validName
		if k == 0 {
			check = validNamespace
		}
		if err := check(n); err != nil {
			return "", "", err
		}
		names[k] = n
	}
	return names[0], names[1], nil
}

// validName checks a namespace or group name from a path or a body.
func validName(n string) error {
	switch {
	case n == "":
		return apierr.New(apierr.BadData, "empty namespace or group name")
	case len(n) > 256:
		return apierr.New(apierr.BadData, "name %q… is longer than 256 bytes", n[:32])
	case !utf8.ValidString(n) || strings.ContainsAny(n, "/;") || strings.IndexFunc(n, unicode.IsControl) >= 0:
		// ';' joins file and group in a rule group's key (rules.GroupKey).
		return apierr.New(apierr.BadData, "name %q: must be UTF-8 without '/', ';' or control characters", n)
	}
	return nil
}

// validNamespace is validName for a namespace: rule files are named by
// their file names, and an API namespace named like one would be taken
// for it.
func validNamespace(n string) error {
	if err := validName(n); err != nil {
		return err
	}
	if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
		return apierr.New(apierr.BadData, "namespace %q: must not end in .yaml or .yml", n)
	}
	return nil
}

func (r *Ruler) getConfig(w http.ResponseWriter, id, namespace, group string) error {
	all := r.store.groups(id)
	out := map[string][]rulefmt.RuleGroup{}
	for ns, entries := range all {
		if namespace != "" && ns != namespace {
			continue
		}
		for _, e := range entries {
			if group != "" && e.Group != group {
				continue
			}
			var g rulefmt.RuleGroup
			if err := yaml.Unmarshal([]byte(e.Content), &g); err != nil {
				return apierr.New(apierr.Internal, "stored group %s/%s: %s", ns, e.Group, err)
			}
			out[ns] = append(out[ns], g)
		}
	}
	if len(out) == 0 {
		return apierr.New(apierr.NotFound, "no rule groups found")
	}
	w.Header().Set("Content-Type", "application/yaml")
	if group != "" {
		return yaml.NewEncoder(w).Encode(out[namespace][0])
	}
	return yaml.NewEncoder(w).Encode(out)
}

func (r *Ruler) postGroup(w http.ResponseWriter, req *http.Request, id, namespace string) error {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRuleGroupBytes+1))
	if err != nil {
		return apierr.New(apierr.BadData, "reading the rule group: %s", err)
	}
	if len(body) > maxRuleGroupBytes {
		return apierr.New(apierr.TooLarge, "the rule group is over %d bytes", maxRuleGroupBytes)
	}
	content, name, err := validateGroup(body)
	if err != nil {
		return err
	}
	for _, ext := range []string{".yaml", ".yml"} {
		// One namespace, one source: its groups would otherwise run twice.
		if _, err := os.Stat(filepath.Join(r.cfg.RulePath, id, namespace+ext)); err == nil {
			return apierr.New(apierr.BadData, "namespace %q is the rule file %s%s of the tenant's rule directory: change that file, or use another namespace", namespace, namespace, ext)
		}
	}
	lim := r.limits.For(id)
	if lim.RulerMaxRulesPerRuleGroup > 0 {
		var g rulefmt.RuleGroup
		_ = yaml.Unmarshal(content, &g)
		if len(g.Rules) > lim.RulerMaxRulesPerRuleGroup {
			return apierr.New(apierr.BadData, "group %q has %d rules, over the tenant's ruler_max_rules_per_rule_group of %d", name, len(g.Rules), lim.RulerMaxRulesPerRuleGroup)
		}
	}
	if lim.RulerMaxRuleGroupsPerTenant > 0 {
		n, replaces := 0, false
		for ns, entries := range r.store.groups(id) {
			for _, e := range entries {
				n++
				replaces = replaces || (ns == namespace && e.Group == name)
			}
		}
		if !replaces && n+1 > lim.RulerMaxRuleGroupsPerTenant {
			return apierr.New(apierr.BadData, "the tenant has %d rule groups through the API, its ruler_max_rule_groups_per_tenant is %d", n, lim.RulerMaxRuleGroupsPerTenant)
		}
	}
	text := string(content)
	if err := r.store.put(id, namespace, map[string]*string{name: &text}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// validateGroup parses one rule group as Prometheus parses a rule file's
// groups, and returns it re-encoded (what the store keeps) with its name.
// Gossiped groups are checked the same way.
func validateGroup(body []byte) ([]byte, string, error) {
	var g rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, "", apierr.New(apierr.BadData, "empty rule group")
		}
		return nil, "", apierr.New(apierr.BadData, "the body is not a rule group: %s", err)
	}
	if err := validName(g.Name); err != nil {
		return nil, "", err
	}
	content, err := yaml.Marshal(g)
	if err != nil {
		return nil, "", apierr.New(apierr.BadData, "the body is not a rule group: %s", err)
	}
	doc, _ := yaml.Marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
	if _, errs := rulefmt.Parse(doc, false, model.UTF8Validation, groupParser, slog.New(slog.DiscardHandler)); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for k, e := range errs {
			msgs[k] = e.Error()
		}
		return nil, "", apierr.New(apierr.BadData, "invalid rule group: %s", strings.Join(msgs, "; "))
	}
	return content, g.Name, nil
}

// groupParser parses the expressions of groups posted or gossiped.
var groupParser = parser.NewParser(parser.Options{})

func (r *Ruler) deleteConfig(w http.ResponseWriter, id, namespace, group string) error {
	del := map[string]*string{}
	for _, e := range r.store.groups(id)[namespace] {
		if group == "" || e.Group == group {
			del[e.Group] = nil
		}
	}
	if len(del) == 0 {
		return apierr.New(apierr.NotFound, "no rule groups found")
	}
	if err := r.store.put(id, namespace, del); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// storeDoc is the rule file of an API namespace: its groups, in name
// order, as the loader parses a file.
func storeDoc(entries []*storeEntry) ([]byte, error) {
	var doc rulefmt.RuleGroups
	for _, e := range entries {
		var g rulefmt.RuleGroup
		if err := yaml.Unmarshal([]byte(e.Content), &g); err != nil {
			return nil, fmt.Errorf("stored group %q: %w", e.Group, err)
		}
		doc.Groups = append(doc.Groups, g)
	}
	return yaml.Marshal(doc)
}
