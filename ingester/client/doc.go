// Package client keeps one gRPC connection per ingester address, with the
// tenant and panic-recovery interceptors every caller needs, and dials with
// TLS and a client certificate when TLSConfig says so.
//
// The ingester in the same process is read in process: QueryStream goes
// straight to it, taking turns with the reader (localClient), while its
// other calls still use gRPC.
//
// It must never choose which ingester to call; callers ask the ring.
package client
