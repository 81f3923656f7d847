package main

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orrery/orrery/loadgen"
)

// plan fixes the shape of a run before it starts: how the series split into
// requests, how many rounds are expected, and the data timestamps.
type plan struct {
	series      int
	batchSize   int
	batches     int   // requests per round
	rounds      int   // expected rounds, used to place the start timestamp
	pregen      int   // rounds generated before the timed phase
	startMillis int64 // timestamp of round 0
	stepMillis  int64
	// histograms sends each series' native histogram instead of its float.
	histograms bool
	// otlp sends OTLP exports instead of remote write requests.
	otlp bool
}

// flatOutCeiling is the most samples per second a flat-out run is expected
// to reach on the 2-core benchmark machine (VictoriaMetrics peaks near 1.6M
// there). It bounds pre-generation for short runs and places the start
// timestamp when no -rate says how many rounds to expect.
const flatOutCeiling = 4e6

// makePlan derives the plan. roundBytes is the compressed size of one round,
// measured by the caller, which sizes the pre-generation budget. Without a
// -rate the number of rounds is unknown: it is taken as what flatOutCeiling
// would send, capped by the budget, so data ends near now if the target
// keeps up; a slower target leaves the data ending earlier, a faster one
// (beyond the budget) runs into the future.
func makePlan(cfg config, now time.Time, roundBytes int) (plan, error) {
	if cfg.series <= 0 || cfg.batch <= 0 {
		return plan{}, fmt.Errorf("series (%d) and batch (%d) must be positive", cfg.series, cfg.batch)
	}
	if cfg.interval < time.Millisecond {
		return plan{}, fmt.Errorf("interval %v is below the 1ms timestamp resolution", cfg.interval)
	}
	p := plan{
		series:     cfg.series,
		batchSize:  cfg.batch,
		batches:    (cfg.series + cfg.batch - 1) / cfg.batch,
		stepMillis: cfg.interval.Milliseconds(),
		histograms: cfg.histograms,
		otlp:       cfg.otlp,
	}
	budget := max(1, int(int64(cfg.pregenMiB)<<20/int64(max(1, roundBytes))))
	if cfg.pregenMiB <= 0 {
		budget = 0
	}
	offered := cfg.rate
	if offered <= 0 {
		offered = flatOutCeiling
	}
	p.rounds = max(1, int(math.Ceil(offered*cfg.duration.Seconds()/float64(cfg.series))))
	if cfg.rate <= 0 && budget > 0 {
		p.rounds = min(p.rounds, budget)
	}
	if cfg.maxRounds > 0 {
		p.rounds = min(p.rounds, cfg.maxRounds)
	}
	p.pregen = min(p.rounds, budget)
	if cfg.start != "" {
		start, err := parseStart(cfg.start)
		if err != nil {
			return plan{}, err
		}
		p.startMillis = start
	} else {
		p.startMillis = now.UnixMilli() - int64(p.rounds)*p.stepMillis
	}
	return p, nil
}

// parseStart accepts RFC 3339 or Unix milliseconds.
func parseStart(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("parsing -start %q: want RFC 3339 or Unix milliseconds: %w", s, err)
	}
	return t.UnixMilli(), nil
}

func (p plan) timestamp(round int) int64 { return p.startMillis + int64(round)*p.stepMillis }

// batchRange returns the series of request b within a round.
func (p plan) batchRange(b int) (from, to int) {
	from = b * p.batchSize
	return from, min(from+p.batchSize, p.series)
}

// encoder turns (round, batch) into a body, compressed for remote write,
// reusing its buffers.
type encoder struct {
	gen  *loadgen.Generator
	plan plan
	raw  []byte
	comp []byte
}

func (e *encoder) encode(round, b int) []byte {
	from, to := e.plan.batchRange(b)
	if e.plan.otlp {
		return e.gen.OTLPRequest(from, to, round, e.plan.timestamp(round))
	}
	if e.plan.histograms {
		e.raw = e.gen.AppendHistogramRequest(e.raw[:0], from, to, round, e.plan.timestamp(round))
	} else {
		e.raw = e.gen.AppendRequest(e.raw[:0], from, to, round, e.plan.timestamp(round))
	}
	e.comp = loadgen.Compress(e.comp, e.raw)
	return e.comp
}

// measureRound returns the compressed size of round 0, the basis of the
// pre-generation budget.
func measureRound(gen *loadgen.Generator, p plan) int {
	e := &encoder{gen: gen, plan: p}
	total := 0
	for b := 0; b < p.batches; b++ {
		total += len(e.encode(0, b))
	}
	return total
}

// pregenerate builds the first p.pregen rounds on all cores. Bodies are
// indexed round*batches+batch and own their memory.
func pregenerate(gen *loadgen.Generator, p plan) [][]byte {
	bodies := make([][]byte, p.pregen*p.batches)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &encoder{gen: gen, plan: p}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				bodies[i] = append([]byte(nil), e.encode(i/p.batches, i%p.batches)...)
			}
		}()
	}
	wg.Wait()
	return bodies
}
