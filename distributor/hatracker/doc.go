// Package hatracker elects, per tenant and HA cluster, the one Prometheus
// replica whose samples the distributors accept, and fails over to another
// replica when the elected one stops sending.
//
// Elections are gossiped to every distributor over the ring's memberlist
// (ring.Shared); the merge keeps the latest election, so distributors that
// raced to elect different replicas agree within a gossip round.
//
// It must never look at samples or series beyond the two labels it is
// given, and never block a push on the network: a check is a map lookup
// and, at most once per update timeout, a queued broadcast.
package hatracker
