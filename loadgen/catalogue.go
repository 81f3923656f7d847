package loadgen

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// kind selects the value function of a series.
type kind uint8

const (
	kindUp kind = iota
	kindCounter
	kindBucket  // cumulative histogram bucket; _count is the +Inf bucket
	kindHistSum // histogram _sum
	kindLoad
	kindMemory
	kindFSAvail
	kindConst
	kindFilesFree
	kindQuantile
)

// spec is everything Value needs about one series; it is drawn once from
// (seed, series index) when the catalogue is built.
type spec struct {
	kind    kind
	integer bool
	// idx is the bucket index, memory field, quantile index or load
	// smoothing factor, depending on kind; for kindUp non-zero means the
	// target flaps down now and then.
	idx int
	// key seeds the series' noise. Series that must stay consistent with
	// each other (memory fields, summary quantiles) share one key.
	key     uint64
	scale   float64
	counter counterShape
	hist    *histShape
}

// histShape is one histogram child: a counter per band between adjacent
// bucket bounds and a representative observed value per band.
type histShape struct {
	bands []counterShape
	mids  []float64
}

// bucket returns the cumulative count of bands 0..i.
func (h *histShape) bucket(i int, step int64) float64 {
	var total float64
	for j := 0; j <= i; j++ {
		total += floorCount(h.bands[j].at(step))
	}
	return total
}

// sum returns the histogram _sum: band counts times their representative
// values. Each term is non-decreasing in step and float addition is
// monotonic, so the sum is a valid counter too.
func (h *histShape) sum(step int64) float64 {
	var total float64
	for j := range h.bands {
		total += floorCount(h.bands[j].at(step)) * h.mids[j]
	}
	return total
}

// builder appends one instance's series to a catalogue.
type builder struct {
	inst    int
	instKey uint64
	local   int64 // position within the instance, the salt of a series key
	specs   []spec
	lbls    []labels.Labels
	reset   int // index of the reset series once built, else -1
}

// nextKey returns the key of the next series within the instance.
func (b *builder) nextKey() uint64 {
	b.local++
	return hash2(b.instKey, b.local)
}

// groupKey returns a key shared by a group of series of this instance.
func (b *builder) groupKey(group string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(group); i++ {
		h = (h ^ uint64(group[i])) * 1099511628211
	}
	return hash2(b.instKey, int64(h>>1))
}

func (b *builder) add(s spec, kv ...string) {
	b.specs = append(b.specs, s)
	b.lbls = append(b.lbls, labels.FromStrings(kv...))
}

// counter adds a plain counter whose mean increment per step is rate.
func (b *builder) counter(integer bool, rate float64, kv ...string) {
	key := b.nextKey()
	b.add(spec{kind: kindCounter, integer: integer, key: key, counter: newCounterShape(key, rate)}, kv...)
}

func instanceName(inst int, port int) string {
	return fmt.Sprintf("host-%03d:%d", inst, port)
}

// buildInstance appends the whole per-instance catalogue in a fixed order.
func (b *builder) buildInstance() {
	node := instanceName(b.inst, 9100)
	prom := instanceName(b.inst, 9090)
	api := instanceName(b.inst, 8080)
	b.up("node", node, false)
	b.up("prometheus", prom, false)
	// A quarter of the API targets flap (up=0 for steps k%40 in [30,35)), so
	// absent/up-based alerts and avg_over_time(up) have something to show
	// with as few as two instances.
	b.up("api", api, b.inst%4 == 1)
	b.nodeSeries(node)
	b.prometheusSeries(prom)
	b.apiSeries(api)
}

func (b *builder) up(job, instance string, flaps bool) {
	flag := 0
	if flaps {
		flag = 1
	}
	b.add(spec{kind: kindUp, idx: flag, key: b.nextKey()}, "__name__", "up", "job", job, "instance", instance)
}
