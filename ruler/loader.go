package ruler

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// loader is one tenant's rules.GroupLoader. It parses a file with
// Prometheus's rulefmt, as Prometheus does; a file that no longer parses
// is logged (file, line and reason) and its last good version is used
// instead, so one bad edit stops nothing that ran. Of the groups it keeps
// those this ruler owns, within the tenant's limits.
type loader struct {
	root   string // the rule path files are named relative to
	tenant string
	parser parser.Parser
	logger *slog.Logger
	// owns reports whether this ruler evaluates a group; set per sync.
	owns func(namespace, group string) bool
	// limits are the tenant's, per sync: groups in all its files, rules
	// in one group; 0 is unlimited.
	maxGroups, maxRules int
	// onError is told of every refused file or group.
	onError func(error)

	mu       sync.Mutex
	lastGood map[string]*rulefmt.RuleGroups
	// groups counts the groups loaded in this sync, against maxGroups.
	groups int
}

func newLoader(root, tenantID string, p parser.Parser, logger *slog.Logger, onError func(error)) *loader {
	return &loader{root: root, tenant: tenantID, parser: p, logger: logger, onError: onError, lastGood: map[string]*rulefmt.RuleGroups{}}
}

// startSync sets what this sync of the tenant's files loads.
func (l *loader) startSync(owns func(namespace, group string) bool, maxGroups, maxRules int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owns, l.maxGroups, l.maxRules, l.groups = owns, maxGroups, maxRules, 0
}

// forget drops the last good versions of files that are gone.
func (l *loader) forget(keep map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.lastGood {
		if !keep[f] {
			delete(l.lastGood, f)
		}
	}
}

// Load implements rules.GroupLoader. It never fails: a file's errors are
// reported to onError and its last good version (or nothing) is loaded,
// so that the tenant's other files still update.
func (l *loader) Load(file string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	rgs, errs := rulefmt.ParseFile(filepath.Join(l.root, file), ignoreUnknownFields, scheme, l.parser, l.logger)
	for k, err := range errs {
		// As named in the API, without the server's path.
		errs[k] = errors.New(strings.Replace(err.Error(), filepath.Join(l.root, file), file, 1))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(errs) > 0 {
		for _, err := range errs {
			l.onError(fmt.Errorf("tenant %s: rule file refused, its previous version (if any) keeps running: %w", l.tenant, err))
		}
		rgs = l.lastGood[file]
		if rgs == nil {
			return &rulefmt.RuleGroups{}, nil
		}
	} else {
		l.lastGood[file] = rgs
	}
	ns := namespaceOf(file)
	out := &rulefmt.RuleGroups{}
	for _, g := range rgs.Groups {
		if l.maxRules > 0 && len(g.Rules) > l.maxRules {
			l.onError(fmt.Errorf("tenant %s: %s: group %q has %d rules, over the tenant's ruler_max_rules_per_rule_group of %d: not evaluated", l.tenant, file, g.Name, len(g.Rules), l.maxRules))
			continue
		}
		// Counted before ownership: the limit is the tenant's, whichever
		// ruler evaluates each group, and every ruler counts in the same
		// order (files sorted, groups in file order), so they agree.
		l.groups++
		if l.maxGroups > 0 && l.groups > l.maxGroups {
			l.onError(fmt.Errorf("tenant %s: %s: group %q is past the tenant's ruler_max_rule_groups_per_tenant of %d: not evaluated", l.tenant, file, g.Name, l.maxGroups))
			continue
		}
		if l.owns(ns, g.Name) {
			out.Groups = append(out.Groups, g)
		}
	}
	return out, nil
}

// Parse implements rules.GroupLoader.
func (l *loader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// namespaceOf is a rule file's namespace: its name without the extension,
// as mimirtool names a namespace after the file it came from.
func namespaceOf(file string) string {
	base := filepath.Base(file)
	return strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
}
