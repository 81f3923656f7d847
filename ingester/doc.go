// Package ingester owns the series that hash to this instance: it appends
// their samples to Gorilla/XOR chunks in memory, logs every accepted sample
// to a write-ahead log before acknowledging it, flushes completed chunks to
// the store, and answers queries from memory and store over gRPC.
//
// The store is whatever implements chunks.Store, the interface the ingester
// declares in its chunks package with its own chunk types; cmd/orrery
// opens the bbolt store (package store) and hands it in. The ingester
// never names an implementation, and never opens or closes the store.
//
// It keeps each tenant's deletion tombstones (docs/deletion.md) in the
// store and filters every sample it hands out by them: selects, series and
// label calls, and handover.
//
// It owns leaving (Leaver): marking its ring entry LEAVING, handing its
// series to their owners (the only time it talks to other ingesters), and
// deciding whether stopping removes the entry or keeps it. It reaches its
// entry through Membership and the ring through Owners, both declared
// here; cmd/orrery hands in the ring member.
//
// It must never decide which series it owns (that is the ring's job),
// never gossip, and never evaluate PromQL.
package ingester
