package loadgen

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
)

// SeriesPerInstance is the size of one instance's catalogue (all three
// jobs). Tests pin it so an accidental catalogue change is noticed: it
// changes which series index names which series.
const SeriesPerInstance = 210

// DefaultResetStep is the step at which the one resetting counter drops.
// Step 30 is 7.5 minutes into a run at 15 s steps: late enough that a 5m
// rate window before it is clean, early enough that short end-to-end runs
// still cover it.
const DefaultResetStep = 30

// Generator holds the catalogue of one workload. It is immutable after
// construction and safe for concurrent use.
type Generator struct {
	specs       []spec
	series      []labels.Labels
	encoded     []byte // each series' TimeSeries label fields, back to back
	offsets     []int  // series i's fields are encoded[offsets[i]:offsets[i+1]]
	resetSeries int
	resetStep   int
}

// Option adjusts a Generator at construction.
type Option func(*Generator)

// WithResetStep moves the counter reset to step; step <= 0 disables it, for
// callers that need every counter strictly monotonic.
func WithResetStep(step int) Option {
	return func(g *Generator) { g.resetStep = step }
}

// New returns the catalogue for instances hosts (host-000 ...).
func New(seed int64, instances int, opts ...Option) *Generator {
	return build(seed, instances, instances*SeriesPerInstance, opts)
}

// NewWithSeries returns exactly n series: as many whole instances as fit,
// then a prefix of the next one. Series i is the same series with the same
// values as series i of New with enough instances.
func NewWithSeries(seed int64, n int, opts ...Option) *Generator {
	instances := (n + SeriesPerInstance - 1) / SeriesPerInstance
	return build(seed, instances, n, opts)
}

func build(seed int64, instances, n int, opts []Option) *Generator {
	if instances < 0 || n < 0 {
		panic(fmt.Sprintf("loadgen: negative size (instances=%d, series=%d)", instances, n))
	}
	b := &builder{reset: -1}
	root := mix(uint64(seed))
	for i := 0; i < instances; i++ {
		b.inst = i
		b.instKey = hash2(root, int64(i))
		b.local = 0
		b.buildInstance()
	}
	g := &Generator{
		specs:       b.specs[:n:n],
		series:      b.lbls[:n:n],
		resetSeries: b.reset,
		resetStep:   DefaultResetStep,
	}
	if g.resetSeries >= n {
		g.resetSeries = -1
	}
	for _, o := range opts {
		o(g)
	}
	g.encodeLabels()
	return g
}

// Len returns the number of series.
func (g *Generator) Len() int { return len(g.specs) }

// Series returns all series in their stable order. The slice is shared: do
// not modify it.
func (g *Generator) Series() []labels.Labels { return g.series }

// Reset reports which series has the counter reset and at which step its
// value first drops; ok is false when the catalogue has none (no instance 0,
// or disabled by WithResetStep).
func (g *Generator) Reset() (series, step int, ok bool) {
	if g.resetSeries < 0 || g.resetStep <= 0 {
		return -1, 0, false
	}
	return g.resetSeries, g.resetStep, true
}

// Value returns the sample of series at step. It is a pure function of
// (seed, series, step) computed in closed form, O(1) except for histogram
// buckets, which add up at most one counter per bucket.
func (g *Generator) Value(series, step int) float64 {
	s := &g.specs[series]
	k := int64(step)
	var v float64
	switch s.kind {
	case kindCounter:
		v = s.counter.at(k)
		if series == g.resetSeries && g.resetStep > 0 && step >= g.resetStep {
			v -= s.counter.at(int64(g.resetStep - 1))
		}
	case kindBucket:
		return s.hist.bucket(s.idx, k)
	case kindHistSum:
		return s.hist.sum(k)
	default:
		v = gaugeValue(s, k)
	}
	if s.integer {
		return floorCount(v)
	}
	return v
}

// floorCount turns a closed-form counter into an integer count; floor keeps
// monotonic sequences monotonic.
func floorCount(v float64) float64 { return math.Floor(v) }

// gaugeValue computes every kind that is not a counter.
func gaugeValue(s *spec, k int64) float64 {
	switch s.kind {
	case kindUp:
		if phase := ((k % 40) + 40) % 40; s.idx == 1 && phase >= 30 && phase < 35 {
			return 0
		}
		return 1
	case kindLoad:
		// Two decimals, as /proc/loadavg reports them.
		load := cpusPerNode * 1.5 * walk(s.key, k, int64(s.idx))
		return math.Round(load*100) / 100
	case kindMemory:
		return memoryValue(s, k)
	case kindFSAvail:
		const block = 4096
		return math.Floor(s.scale*(0.1+0.8*walk(s.key, k, 4))/block) * block
	case kindConst:
		return s.scale
	case kindFilesFree:
		return s.scale * (0.3 + 0.6*walk(s.key, k, 4))
	case kindQuantile:
		return quantileValue(s, k)
	}
	panic(fmt.Sprintf("loadgen: unknown series kind %d", s.kind))
}

// memoryValue derives all fields from one usage level a in [0.2, 0.8]: the
// shares below keep free+buffers+cached = 0.85a·total < total and
// available = 0.82a·total <= total.
func memoryValue(s *spec, k int64) float64 {
	if s.idx == 0 {
		return s.scale
	}
	a := 0.2 + 0.6*walk(s.key, k, 2)
	share := [...]float64{0, 0.35, 0.05, 0.45, 0.82}[s.idx]
	return s.scale * a * share
}

// quantileValue chains the quantiles so q0.5 <= q0.9 <= q0.99 always holds.
func quantileValue(s *spec, k int64) float64 {
	q := 0.001 + 0.004*walk(s.key, k, 1)
	for i := 1; i <= s.idx; i++ {
		q *= 1.5 + walk(s.key+uint64(i), k, 1)
	}
	return q
}
