// Package shard owns the query shard: which series belong to the i-th of n
// parts of a query, how that is written as the matcher
// __query_shard__="<i>_of_<n>" that ingesters apply, and how a shard rides
// in a request (HTTP header) and its context to the querier.
//
// A series belongs to shard i of n iff labels.StableHash(series) % n == i-1,
// so the shards of one n partition every set of series, and the answer
// never changes across versions or processes (StableHash's promise).
//
// It must never read or select data itself, and never depend on the
// querier, the ingester or the frontend: all three import it.
package shard
