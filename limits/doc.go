// Package limits owns the per-tenant limits: their defaults (flags) and
// the runtime overrides file that changes them per tenant without a
// restart.
//
// It must never enforce a limit itself: the distributor, ingester and
// querier read the tenant's Limits and decide.
package limits
