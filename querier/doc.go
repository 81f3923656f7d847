// Package querier evaluates PromQL with the upstream engine over a
// storage.Queryable that fans each select out to the ingesters the ring
// names and merges their label-sorted streams as the engine iterates:
// replicas' identical chunks are kept once, and only chunks that differ
// are merged sample by sample. Shardable aggregations it pushes down to
// the ingesters (pushdown.go): one replica of each series whose replicas'
// chunk digests agree evaluates it, through the Pushdown gRPC contract,
// and the querier aggregates the partial results. It serves the
// Prometheus HTTP API with Prometheus's own handler, so that response
// shapes and error types are Prometheus's to the byte.
//
// It must never write data and never read an ingester's internals: all it
// knows of an ingester is the gRPC contract.
package querier
