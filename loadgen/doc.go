// Package loadgen owns Orrery's synthetic workload: a fixed catalogue of
// realistic node-exporter, Prometheus-self and API series, their sample
// values, a zero-allocation marshaller of remote_write 1.0 requests, the
// same samples as OTLP exports, and an HTTP client that pushes either.
//
// Every sample is a pure function of (seed, series index, step index), so the
// load tool, benchmarks and end-to-end tests can write the same data into
// Orrery and into a reference Prometheus and regenerate any sample later to
// verify a query result. Values are computed in closed form (no iteration, no
// cached state), so Value is O(1) for any step:
//
//   - counters: f(k) = base + r·k + A·r·(cos φ − cos(ωk+φ))/ω + J·r·u(k),
//     with u(k) ∈ [0,1) a hash of (series, k) and A+J ≤ 0.9, so every
//     increment lies in [0.1·r, 1.9·r]: strictly increasing with pseudo-random
//     steps and a slow daily-like swell. Integer counters are floor(f(k)).
//     Exactly one series (see Generator.Reset) drops to a small value at the
//     reset step and keeps counting from there.
//   - gauges: a bounded random walk approximated in closed form by
//     multi-octave value noise (hash-seeded lattice points, smoothly
//     interpolated), scaled into plausible bounds.
//   - histograms: every bucket band (observations between two adjacent le
//     bounds) is its own integer counter; bucket le_j is the sum of bands
//     0..j, _count the sum of all bands and _sum the band counts weighted by
//     a representative value, so buckets are cumulative and monotonic and
//     _count equals the +Inf bucket at every step.
//
// It must never depend on Orrery's own packages (it is the independent side
// of comparisons), never read the clock or global randomness (determinism),
// and never send to any address other than the URL its caller gives it.
package loadgen
