// Package evaluator is pushdown's ingester end (docs/architecture.md,
// "Pushdown"): the gRPC Pushdown service an ingester process serves. It
// digests the series a selector reads, so a querier can tell which
// replicas agree, and evaluates a partial query over the series a querier
// names, with the upstream engine over the querier's own read path to the
// ingester in the same process.
//
// It owns only those two calls. It must never choose which series it
// evaluates (the querier names them; an evaluation without names is
// refused, since evaluating every series on every replica would count
// each several times), nor read another ingester.
package evaluator
