// Package store owns completed chunks and their series index, per tenant, in
// one bbolt file on local disk, so that data older than what an ingester
// holds in memory is still served, including after a restart. It is the
// ingester's chunks.Store (its types are the ingester's), and passes that
// interface's conformance suite (chunkstest).
//
// It must never know about gRPC, the ring, the WAL or HTTP, and never use a
// tenant ID as a file path: tenants are bbolt buckets inside the one file.
package store
