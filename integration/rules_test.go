//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestSeedAlertRules: seed 000's rules pass promtool, and every rule's
// expression is in the query corpus that TestPromQLMatchesPrometheus3
// evaluates against both Orrery and Prometheus 3.
func TestSeedAlertRules(t *testing.T) {
	const file = "../deploy/compose/rules/demo/seed000.yaml"
	prom := dependency(t, "ORRERY_PROMETHEUS2", "Debian's prometheus package, for its promtool")
	promtool := filepath.Join(filepath.Dir(prom), "promtool")
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "SUCCESS: 3 rules found")

	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &rules))
	corpus := strings.Join(readLines(t, "testdata/queries.txt"), "\n")
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.Contains(t, corpus, r.Expr)
		}
	}
}
