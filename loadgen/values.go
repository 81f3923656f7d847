package loadgen

import "math"

// mix is SplitMix64's finaliser: a cheap, well-distributed bijection on
// uint64. All determinism flows through it, so changing it changes every
// generated value and breaks stored comparison fixtures.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash2 combines a key with an integer (step, label position, ...). Mixing
// twice keeps nearby keys with nearby integers from correlating.
func hash2(key uint64, v int64) uint64 {
	return mix(key ^ mix(uint64(v)+0x632be59bd9b4e019))
}

// unit maps a hash to [0,1) using its top 53 bits, the precision of a float64
// mantissa, so every representable value is equally likely.
func unit(h uint64) float64 {
	return float64(h>>11) / (1 << 53)
}

// uniform returns a deterministic number in [lo,hi) for (key, salt); it is
// used to draw per-series constants such as rates and bases.
func uniform(key uint64, salt int64, lo, hi float64) float64 {
	return lo + (hi-lo)*unit(hash2(key, salt))
}

// smoothNoise is value noise with the given period in steps: hash-seeded
// lattice points every period steps, joined by smoothstep interpolation so
// consecutive samples move a little, like a random walk, but stay in [0,1).
func smoothNoise(key uint64, step int64, period int64) float64 {
	cell := step / period
	rem := step % period
	if rem < 0 {
		cell--
		rem += period
	}
	t := float64(rem) / float64(period)
	t = t * t * (3 - 2*t)
	a := unit(hash2(key, cell))
	b := unit(hash2(key, cell+1))
	return a + (b-a)*t
}

// walk is a bounded random-walk look-alike in [0,1): three octaves of value
// noise with coprime periods (so the pattern does not visibly repeat) and
// weights summing to one. slow stretches all periods, for smoother gauges
// like node_load15.
func walk(key uint64, step int64, slow int64) float64 {
	return 0.55*smoothNoise(key, step, 97*slow) +
		0.3*smoothNoise(key^0x5bd1e995, step, 23*slow) +
		0.15*smoothNoise(key^0x27d4eb2f, step, 5*slow)
}

// counterShape holds the constants of one closed-form counter; see the
// package documentation for the formula and why it is strictly increasing.
type counterShape struct {
	key   uint64
	base  float64 // value at step 0: rate times a pseudo-random uptime
	rate  float64 // mean increment per step
	phase float64
	omega float64
}

const (
	swellAmp  = 0.5 // A: share of the rate that follows the slow wave
	jitterAmp = 0.4 // J: share of the rate that is per-step noise
	// jitterSalt keeps the per-step jitter hashes apart from the hashes that
	// drew the counter's constants from the same key.
	jitterSalt = 0xa0761d6478bd642f
)

// newCounterShape draws a counter's constants from its key. Uptimes of 1 to
// 30 days at 15 s steps keep base far above one increment, so the single
// reset is an unmistakable drop.
func newCounterShape(key uint64, rate float64) counterShape {
	return newCounterShapeUptime(key, rate, drawUptime(key))
}

// drawUptime returns a pseudo-random process uptime in steps.
func drawUptime(key uint64) float64 {
	return uniform(key, 1, 5760, 172800)
}

// newCounterShapeUptime is newCounterShape with a given uptime, so the bands
// of one histogram share the same process start and keep a plausible
// distribution at step 0.
func newCounterShapeUptime(key uint64, rate, uptimeSteps float64) counterShape {
	return counterShape{
		key:   key,
		base:  rate * uptimeSteps,
		rate:  rate,
		phase: uniform(key, 2, 0, 2*math.Pi),
		// Periods between 2 and 8 hours of 15 s steps.
		omega: 2 * math.Pi / uniform(key, 3, 480, 1920),
	}
}

// at returns f(step) for a counter that never resets.
func (c counterShape) at(step int64) float64 {
	if c.rate == 0 {
		return 0
	}
	k := float64(step)
	swell := swellAmp * c.rate * (math.Cos(c.phase) - math.Cos(c.omega*k+c.phase)) / c.omega
	return c.base + c.rate*k + swell + jitterAmp*c.rate*unit(hash2(c.key^jitterSalt, step))
}
