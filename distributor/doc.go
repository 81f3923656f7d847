// Package distributor accepts Prometheus remote_write, validates each series,
// and pushes it to the ingesters the ring assigns, acknowledging a write only
// once a quorum of each series' replicas holds it.
//
// It must never store samples, and never hold state that outlives a request
// other than its configuration, connections, per-tenant rate buckets and
// the count of requests and bytes in flight (budget.go);
// HA elections belong to the hatracker package.
package distributor
