// Package queue owns the query frontend's per-tenant fair queue and the
// transport that carries its requests to queriers.
//
// The frontend side is Scheduler: an http.RoundTripper whose requests wait
// in one FIFO queue per tenant (the X-Scope-OrgID header; a cross-tenant
// read "a|b" is a queue of its own) until a worker takes them, round-robin
// across the tenants with work, so that a tenant's flood delays only its
// own requests. Workers are queriers' Process streams (the gRPC service
// frontendpb.Frontend) or, when the querier runs in the same process,
// LocalWorkers that call its HTTP handler directly.
//
// The querier side is Workers: it finds the frontends (static addresses and
// the ring's members running "query-frontend"), keeps a bounded number of
// Process streams open to each, and serves every request it pulls with the
// querier's API handler under the tenant the frontend named.
//
// It must never authenticate anyone (the frontend's HTTP middleware did, and
// the gRPC link is protected by the servers' mutual TLS), never look inside
// a query, and never answer from anything but a querier's handler.
package queue
