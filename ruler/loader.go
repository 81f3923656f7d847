package ruler

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// loader reads one tenant's rule files. It parses a file with
// Prometheus's rulefmt, as Prometheus does; a file that no longer parses
// is reported (file, line and reason) and its last good version is used
// instead, so one bad edit stops nothing that ran. It keeps the groups
// within the tenant's limits.
type loader struct {
	root   string // the rule path files are named relative to
	tenant string
	parser parser.Parser
	logger *slog.Logger
	// onError is told of every refused file or group.
	onError func(error)
	// store holds the API's namespaces, read for identifiers without a
	// rule file's extension; nil when there is none.
	store *Store

	mu       sync.Mutex
	lastGood map[string]*rulefmt.RuleGroups
	// current are the groups of the last read, by file.
	current map[string][]rulefmt.RuleGroup
	// reported are the last read's refusals: a refusal is reported when
	// it first happens, not on every read while the file stays bad.
	reported, refused map[string]bool
}

func newLoader(root, tenantID string, p parser.Parser, logger *slog.Logger, onError func(error)) *loader {
	return &loader{root: root, tenant: tenantID, parser: p, logger: logger, onError: onError,
		lastGood: map[string]*rulefmt.RuleGroups{}, current: map[string][]rulefmt.RuleGroup{}}
}

// read parses files (in order) and keeps their groups as current: at most
// maxGroups in all, each of at most maxRules rules (0: unlimited). The
// limit is the tenant's, whichever ruler evaluates each group: files that
// parse are counted first, in order, so every ruler keeps the same of
// their groups; the last good versions of files that do not parse, which
// only rulers that read them before hold, take what room is left.
func (l *loader) read(files []string, maxGroups, maxRules int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused = map[string]bool{}
	defer func() { l.reported = l.refused }()
	parsed := make([]*rulefmt.RuleGroups, len(files))
	fresh := make([]bool, len(files))
	for k, file := range files {
		parsed[k], fresh[k] = l.parseLocked(file)
	}
	current := map[string][]rulefmt.RuleGroup{}
	groups := 0
	for _, pass := range []bool{true, false} {
		for k, file := range files {
			if fresh[k] != pass {
				continue
			}
			for _, g := range parsed[k].Groups {
				if maxRules > 0 && len(g.Rules) > maxRules {
					l.refuseLocked(fmt.Errorf("tenant %s: %s: group %q has %d rules, over the tenant's ruler_max_rules_per_rule_group of %d: not evaluated", l.tenant, file, g.Name, len(g.Rules), maxRules))
					continue
				}
				groups++
				if maxGroups > 0 && groups > maxGroups {
					l.refuseLocked(fmt.Errorf("tenant %s: %s: group %q is past the tenant's ruler_max_rule_groups_per_tenant of %d: not evaluated", l.tenant, file, g.Name, maxGroups))
					continue
				}
				current[file] = append(current[file], g)
			}
		}
	}
	for f := range l.lastGood {
		if !contains(files, f) {
			delete(l.lastGood, f)
		}
	}
	l.current = current
}

func contains(files []string, f string) bool {
	for _, x := range files {
		if x == f {
			return true
		}
	}
	return false
}

// maxRuleFileBytes bounds one rule file: a ruler reads every tenant's
// files every poll, and one file must not take its memory.
const maxRuleFileBytes = 4 << 20

// parseLocked parses file (fresh), or returns its last good version (or
// nothing) when it does not parse.
func (l *loader) parseLocked(file string) (rgs *rulefmt.RuleGroups, fresh bool) {
	path := filepath.Join(l.root, file)
	var content []byte
	var err error
	if ns, ok := l.apiNamespace(file); ok {
		content, err = storeDoc(l.store.groups(l.tenant)[ns])
	} else if content, err = readRuleFile(path); err == nil {
		var ok bool
		var groups []byte
		if groups, ok, err = prometheusRuleGroups(content); ok {
			content = groups
		}
	}
	var errs []error
	if err != nil {
		errs = []error{err}
	} else {
		rgs, errs = rulefmt.Parse(content, false, model.UTF8Validation, l.parser, l.logger)
	}
	if len(errs) == 0 {
		l.lastGood[file] = rgs
		return rgs, true
	}
	for _, err := range errs {
		// Named as in the API, without the server's path.
		err = errors.New(file + ": " + strings.ReplaceAll(err.Error(), path, file))
		l.refuseLocked(fmt.Errorf("tenant %s: rule file refused, its previous version on this ruler (if any) keeps running: %w", l.tenant, err))
	}
	if good := l.lastGood[file]; good != nil {
		return good, false
	}
	return &rulefmt.RuleGroups{}, false
}

// apiNamespace returns the namespace of an identifier the store holds.
func (l *loader) apiNamespace(file string) (string, bool) {
	if l.store == nil || strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml") {
		return "", false
	}
	return strings.TrimPrefix(file, l.tenant+"/"), true
}

// readRuleFile reads a regular file of at most maxRuleFileBytes.
func readRuleFile(path string) ([]byte, error) {
	// Non-blocking: a FIFO put in place after the listing must not hang
	// the read; for a regular file the flag does nothing.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRuleFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRuleFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxRuleFileBytes)
	}
	return b, nil
}

// refuseLocked reports err unless the previous read reported it too.
func (l *loader) refuseLocked(err error) {
	msg := err.Error()
	l.refused[msg] = true
	if !l.reported[msg] {
		l.onError(err)
	}
}

// groups returns the current groups of file.
func (l *loader) groups(file string) []rulefmt.RuleGroup {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current[file]
}

// oneGroup is the rules.GroupLoader of one group's manager: it loads that
// group, as the loader last read it.
type oneGroup struct {
	l    *loader
	name string
}

// Load implements rules.GroupLoader; it never fails, the loader having
// reported what it refused.
func (o oneGroup) Load(file string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	out := &rulefmt.RuleGroups{}
	for _, g := range o.l.groups(file) {
		if g.Name == o.name {
			out.Groups = append(out.Groups, g)
		}
	}
	return out, nil
}

// Parse implements rules.GroupLoader.
func (o oneGroup) Parse(query string) (parser.Expr, error) { return o.l.parser.ParseExpr(query) }

// namespaceOf is a rule file's namespace: its name without the extension,
// as mimirtool names a namespace after the file it came from.
func namespaceOf(file string) string {
	base := filepath.Base(file)
	return strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
}
