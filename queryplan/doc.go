// Package queryplan owns the rewrite that runs a PromQL query as partial
// queries and an outer query over their results, and the outer query's
// evaluation. A shardable aggregation (sum, min, max, count or group of
// one series-local selector) becomes a partial query run once per share
// of the series, each share's result kept apart by a label; the outer
// query aggregates the shares again. The query frontend uses it to shard
// a query by series hash across queriers; the querier uses it to push an
// aggregation down to the ingesters, a share being the series one
// ingester evaluates.
//
// It must never read series data or decide how the shares are formed or
// where the partial queries run: that is its callers'. Its one promise is
// that the outer query over every share's partial result answers as the
// whole query does, beyond float rounding.
package queryplan
