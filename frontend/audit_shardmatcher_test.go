package frontend

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/querier/shard"
)

// TestAuditClientShardMatcherNotShardedAgain: a query whose selector picks
// its own shard with the __query_shard__ matcher (which the querier and
// ingesters honour) is sharded again by the frontend; the querier then
// adds a second shard matcher and the ingesters refuse the select ("more
// than one __query_shard__ matcher"), so the query fails through the
// frontend while the same query without an aggregation, or sent to a
// querier, succeeds.
func TestAuditClientShardMatcherNotShardedAgain(t *testing.T) {
	q := `sum(up{` + shard.Label + `="1_of_2"})`
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	require.NoError(t, err)
	require.Nil(t, newPlan(q, expr), "a query that names its own shard is not sharded again")
}
