// Package tenant owns the identity of the tenant a request belongs to: its
// validation, and how it travels in contexts, HTTP headers and gRPC metadata.
// It also tells an operator's admin credential from a tenant's (Admins).
//
// It must never decide what a tenant may do (that is limits' job) and never
// hold per-tenant state.
package tenant
