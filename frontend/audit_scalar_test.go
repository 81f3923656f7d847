package frontend

import (
	"testing"
)

// TestAuditScalarSubtreeOfShardedQuery: a scalar-typed subtree that reads
// data but holds no shardable aggregation (scalar(quantile(...)),
// scalar(some_single_series)) is left in the rewritten query, so the
// frontend's outer engine evaluates it over the embedded partial results
// only, where its selector finds nothing: NaN instead of the value.
func TestAuditScalarSubtreeOfShardedQuery(t *testing.T) {
	auditCheck(t, 2,
		`sum(node_load1) * scalar(quantile(0.5, node_load1))`,
		`sum(node_load1) > bool scalar(max(node_load5) - min(node_load5))`,
		`clamp_max(sum by (instance) (node_load1), scalar(quantile(0.5, node_load15)))`,
		`quantile(scalar(quantile(0.1, node_load1)) / 10, sum by (instance) (node_load5))`,
	)
}
