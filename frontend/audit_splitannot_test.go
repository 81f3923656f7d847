package frontend

import "testing"

// TestAuditSplitRepeatsValueWarnings: a range query split into parts
// gathers each part's annotations, so a warning that Prometheus gives once
// for the query, with the value it saw (quantile's parameter out of
// range), comes back once per part, each with another value.
func TestAuditSplitRepeatsValueWarnings(t *testing.T) {
	auditCheck(t, 1, // split only, no sharding
		`quantile(scalar(node_load1{instance="host-000:9100"}), node_load5)`,
	)
}
