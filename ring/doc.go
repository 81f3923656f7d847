// Package ring is Orrery's token ring: who is in the cluster, which
// instance owns which part of the 32-bit hash space, and whether each one is
// alive. Membership travels over hashicorp/memberlist gossip; there is no
// Consul or etcd.
//
// It owns:
//   - the gossiped ring state (ringpb.Desc) and its merge laws (desc.go,
//     DESIGN.md),
//   - this process's own ring entry: its tokens, their persistence, its
//     heartbeat and its state (Member),
//   - the read-side lookups the write and read paths use (Ring.Get,
//     Ring.ForQuery) and the series hash that places a series (ShardKey).
//
// It must never:
//   - write another instance's entry, except the one deterministic
//     tombstone every member derives for an instance silent for too long;
//   - block a memberlist callback on I/O or on a caller (observers are
//     notified through buffered channels, never waited for);
//   - move data, dial ingesters or decide retries: callers get a
//     ReplicationSet and do the work;
//   - register flags or metrics globally: everything hangs off Config, the
//     Registerer and the logger handed to NewMember.
//
// With a single member it is already the real thing: a memberlist bound on
// a real port that other members can join at any time.
package ring
