// Package apierr is the one place where Orrery's errors meet status codes:
// every error that reaches a client is classified by Kind here, and mapped to
// an HTTP status and a gRPC code and back.
//
// It must never log, retry or decide policy; it only classifies.
package apierr
