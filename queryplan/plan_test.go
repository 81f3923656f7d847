package queryplan

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/querier/shard"
)

// TestPlanRules pins what is sharded: the leaves each query runs as,
// sharded ones marked with *.
func TestPlanRules(t *testing.T) {
	f := func(q string, want ...string) {
		t.Helper()
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		require.NoError(t, err)
		pl := New(q, expr)
		if len(want) == 0 {
			require.Nil(t, pl, "%s: sharded as %v", q, pl)
			return
		}
		require.NotNil(t, pl, q)
		var got []string
		for _, l := range pl.Leaves {
			require.Len(t, l.Text, len(q), "a partial query's text must keep the query's length")
			s := strings.TrimSpace(l.Text)
			if l.Sharded {
				s = "*" + s
			}
			got = append(got, s)
		}
		require.Equal(t, want, got, q)
	}
	// Shardable aggregations over series-local arguments.
	f(`sum(http_requests_total)`, `*sum(http_requests_total)`)
	f(`sum by (job) (rate(http_requests_total[5m]))`, `*sum by (job) (rate(http_requests_total[5m]))`)
	f(`max without (cpu) (rate(node_cpu_seconds_total[5m]) * 8)`, `*max without (cpu) (rate(node_cpu_seconds_total[5m]) * 8)`)
	f(`count by (job) (up == 1)`, `*count by (job) (up == 1)`)
	// The aggregations inside a binary operation are sharded apart; the
	// rest reads whole.
	f(`sum(a) / on() group_left count(b) + c`, `*sum(a)`, `*count(b)`, `c`)
	f(`histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))`, `*sum by (le) (rate(h_bucket[5m]))`)
	f(`topk(3, sum by (instance) (rate(x_total[5m])))`, `*sum by (instance) (rate(x_total[5m]))`)
	f(`scalar(sum(up)) * node_load5`, `*sum(up)`, `node_load5`)

	// Not sharded.
	f(`node_load1`)
	f(`quantile(0.9, node_load1)`)
	f(`stddev(node_load1)`)
	f(`count_values("v", up)`)
	f(`sum(a / b)`)                                           // two selectors
	f(`sum(sum(a))`, `*sum(a)`)                               // the outer aggregation of an aggregation is not sharded, the inner one is
	f(`sum(sum by (job) (a) / 2)`, `*sum by (job) (a)`)       // the same behind arithmetic
	f(`sum(label_replace(up, "a", "b", "c", "d"))`)           // can merge series
	f(`sum(rate({__name__=~"a|b"}[5m]))`)                     // names dropped: a{x} and b{x} collide unsharded
	f(`sum({__name__=~"a|b"})`, `*sum({__name__=~"a|b"})`)    // names kept: no collision
	f(`max_over_time(sum(rate(x[1m]))[10m:1m])`)              // in a subquery
	f(`absent(sum(up))`)                                      // absent reads its argument's selector
	f(`topk(scalar(up), up)`)                                 // k not a literal
	f(`topk by (mode) (2, rate(node_cpu_seconds_total[5m]))`) // ties: other series than Prometheus's
	f(`avg(node_load1)`)                                      // sum / count reads twice and overflows
	f(`sum(rate(x[5m])) - vector(1)`, `*sum(rate(x[5m]))`)
}

// TestBlankKeepsPositions: a partial query is the query with everything
// else blanked, newlines kept, so line:column positions stay.
func TestBlankKeepsPositions(t *testing.T) {
	q := "1 +\n  sum(\n rate(x[5m]))"
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	require.NoError(t, err)
	pl := New(q, expr)
	require.Len(t, pl.Leaves, 1)
	require.Equal(t, "   \n  sum(\n rate(x[5m]))", pl.Leaves[0].Text)
}

// TestClientShardMatcherNotShardedAgain: a query whose selector picks
// its own shard with the __query_shard__ matcher (which the querier and
// ingesters honour) was sharded again by the frontend; the querier then
// adds a second shard matcher and the ingesters refuse the select ("more
// than one __query_shard__ matcher"), so the query fails through the
// frontend while the same query without an aggregation, or sent to a
// querier, succeeds.
func TestClientShardMatcherNotShardedAgain(t *testing.T) {
	q := `sum(up{` + shard.Label + `="1_of_2"})`
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	require.NoError(t, err)
	require.Nil(t, New(q, expr), "a query that names its own shard is not sharded again")
}
