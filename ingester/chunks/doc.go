// Package chunks declares what the ingester needs of a store of completed
// chunks (Store), in the ingester's own types (Chunk, SeriesChunks), and
// the conformance suite every implementation must pass (chunkstest).
//
// It owns the contract, not an implementation: it must never open files,
// know bbolt, or depend on the ingester's memory, WAL or gRPC. The bbolt
// store (package store) implements it; cmd/orrery opens that store and
// hands it to the ingester.
package chunks
