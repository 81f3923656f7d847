// Package integration holds the end-to-end tests that start real processes
// (orrery, Prometheus 3 as the reference for results, Debian's Prometheus 2
// as a remote-write client) on loopback addresses and compare what they
// answer. They run with -tags=integration; `make test` runs them.
package integration
