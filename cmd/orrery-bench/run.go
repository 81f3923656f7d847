package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/orrery/orrery/loadgen"
)

// pacer spreads requests so the run as a whole sends rate samples per
// second. When the target falls behind, the schedule restarts from now
// instead of bursting to catch up, so the offered load never exceeds -rate.
type pacer struct {
	mu               sync.Mutex
	next             time.Time
	secondsPerSample float64
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{secondsPerSample: 1 / rate}
}

// wait blocks until a request of samples may go, or ctx ends.
func (p *pacer) wait(ctx context.Context, samples int) error {
	if p == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(samples) * p.secondsPerSample * float64(time.Second)))
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pseudo status codes: Send reports success without the exact 2xx code,
// and transport failures have none.
const (
	statusTransport = 0
	statusOK        = 1
)

// tally is one worker's outcome; workers own theirs, so recording needs no
// lock, and tallies are merged after the run.
type tally struct {
	latencies  []time.Duration
	ok         int
	samples    int64
	byStatus   map[int]int // keyed by HTTP status, statusOK or statusTransport
	firstError map[int]string
	onTheFly   int // requests generated during the timed phase
	lastRound  int
}

func newTally() *tally {
	return &tally{byStatus: map[int]int{}, firstError: map[int]string{}, lastRound: -1}
}

func (t *tally) record(d time.Duration, samples int, err error) {
	t.latencies = append(t.latencies, d)
	status := statusTransport
	var se *loadgen.StatusError
	switch {
	case err == nil:
		t.ok++
		t.samples += int64(samples)
		status = statusOK
	case errors.As(err, &se):
		status = se.StatusCode
	}
	t.byStatus[status]++
	if err != nil && t.firstError[status] == "" {
		t.firstError[status] = err.Error()
	}
}

func (t *tally) merge(o *tally) {
	t.latencies = append(t.latencies, o.latencies...)
	t.ok += o.ok
	t.samples += o.samples
	t.onTheFly += o.onTheFly
	for k, v := range o.byStatus {
		t.byStatus[k] += v
	}
	for k, v := range o.firstError {
		if t.firstError[k] == "" {
			t.firstError[k] = v
		}
	}
	t.lastRound = max(t.lastRound, o.lastRound)
}

// runner sends rounds until the deadline. Worker w owns the batches
// b ≡ w (mod workers) and walks them round by round, so successive samples
// of one series are always sent in timestamp order: receivers without an
// out-of-order window would reject them otherwise.
type runner struct {
	gen       *loadgen.Generator
	plan      plan
	bodies    [][]byte
	client    *loadgen.Client
	pacer     *pacer
	maxRounds int
	workers   int
}

// run sends until stop ends, then waits for in-flight requests, which send
// (normally a context that only a signal cancels) bounds together with the
// client timeout.
func (r *runner) run(stop, send context.Context) *tally {
	total := newTally()
	tallies := make([]*tally, r.workers)
	var wg sync.WaitGroup
	for w := range tallies {
		tallies[w] = newTally()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(stop, send, w, tallies[w])
		}()
	}
	wg.Wait()
	for _, t := range tallies {
		total.merge(t)
	}
	return total
}

func (r *runner) work(stop, send context.Context, w int, t *tally) {
	enc := &encoder{gen: r.gen, plan: r.plan}
	for round := 0; r.maxRounds <= 0 || round < r.maxRounds; round++ {
		for b := w; b < r.plan.batches; b += r.workers {
			from, to := r.plan.batchRange(b)
			if r.pacer.wait(stop, to-from) != nil {
				return
			}
			var body []byte
			if round < r.plan.pregen {
				body = r.bodies[round*r.plan.batches+b]
			} else {
				body = enc.encode(round, b)
				t.onTheFly++
			}
			start := time.Now()
			err := r.client.Send(send, body)
			t.record(time.Since(start), to-from, err)
		}
		t.lastRound = round
	}
}
