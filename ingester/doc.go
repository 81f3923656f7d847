// Package ingester owns the series that hash to this instance: it appends
// their samples to Gorilla/XOR chunks in memory, logs every accepted sample
// to a write-ahead log before acknowledging it, flushes completed chunks to
// the store, and answers queries from memory and store over gRPC.
//
// It must never decide which series it owns (that is the ring's job), never
// talk to other ingesters, and never evaluate PromQL.
package ingester
