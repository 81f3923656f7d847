// Package client keeps one gRPC connection per ingester address, with the
// tenant and panic-recovery interceptors every caller needs.
//
// It must never choose which ingester to call; callers ask the ring.
package client
