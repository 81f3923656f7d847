// Package integration holds the end-to-end tests that start real processes
// (orrery, Prometheus 3 as the reference for results, Debian's Prometheus 2
// as a remote-write client) on loopback addresses and compare what they
// answer. They run with -tags=integration; `make test` runs them.
//
// Tests that spend their time waiting (heartbeat timeouts, `for` clocks,
// handovers) call t.Parallel() and run three at a time after the others;
// tests that bound a latency or a takeover time, or load both cores, stay
// serial so no neighbour skews what they measure.
package integration
