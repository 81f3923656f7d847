package main

import (
	"sync"
	"time"
)

// outcome is what the receiver said about one write request.
type outcome uint8

const (
	// pending: not answered yet.
	pending outcome = iota
	// acked: a 2xx; every sample must read back.
	acked
	// uncertain: a 5xx, 429, transport error or timeout on the last
	// attempt; the samples may or may not be stored.
	uncertain
	// rejected: a 4xx other than 429, for data that is valid: the checker
	// fails the run, and the samples may or may not be stored (a 400 may
	// come after a replica stored them).
	rejected
)

// ledger records the outcome of every write request, by round (step) and
// batch, and how long writes were unavailable. It is safe for concurrent
// use.
type ledger struct {
	batches int

	mu       sync.Mutex
	rounds   [][]outcome
	finished int // rounds [0, finished) have every batch answered
	// failingSince[b] is when batch b's writes started failing, zero while
	// they succeed.
	failingSince []time.Time
	longest      outage
	counts       writeCounts
}

// outage is a span during which one batch's writes kept failing.
type outage struct {
	From, To time.Time
}

func (o outage) duration() time.Duration { return o.To.Sub(o.From) }

// writeCounts are totals over every request attempt.
type writeCounts struct {
	Attempts         int            `json:"attempts"`
	AttemptsByStatus map[string]int `json:"attempts_by_status"`
	RequestsAcked    int            `json:"requests_acked"`
	RequestsGivenUp  int            `json:"requests_given_up"`
	RequestsRejected int            `json:"requests_rejected"`
}

func newLedger(batches int) *ledger {
	return &ledger{
		batches:      batches,
		failingSince: make([]time.Time, batches),
		counts:       writeCounts{AttemptsByStatus: map[string]int{}},
	}
}

// startRound opens round k; rounds are opened in order, from 0.
func (l *ledger) startRound(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k != len(l.rounds) {
		panic("ledger: rounds must be started in order")
	}
	l.rounds = append(l.rounds, make([]outcome, l.batches))
}

// attempt records one attempt of batch b; status is "2xx", "5xx", "429",
// "4xx" or "error".
func (l *ledger) attempt(b int, status string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.Attempts++
	l.counts.AttemptsByStatus[status]++
	if status == "2xx" {
		if since := l.failingSince[b]; !since.IsZero() {
			l.noteOutageLocked(outage{since, at})
			l.failingSince[b] = time.Time{}
		}
		return
	}
	if l.failingSince[b].IsZero() {
		l.failingSince[b] = at
	}
}

func (l *ledger) noteOutageLocked(o outage) {
	if o.duration() > l.longest.duration() {
		l.longest = o
	}
}

// settle records the final outcome of batch b in round k.
func (l *ledger) settle(k, b int, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rounds[k][b] = o
	switch o {
	case acked:
		l.counts.RequestsAcked++
	case uncertain:
		l.counts.RequestsGivenUp++
	case rejected:
		l.counts.RequestsRejected++
	}
}

// finishRound marks round k complete: every batch settled.
func (l *ledger) finishRound(k int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k != l.finished {
		panic("ledger: rounds must be finished in order")
	}
	l.finished++
}

// snapshot returns a copy of the settled rounds, for checking answers
// without holding the lock.
func (l *ledger) snapshot() *settled {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &settled{rounds: l.rounds[:l.finished:l.finished]}
}

// longestOutage returns the longest span a batch's writes kept failing,
// counting one still failing at now as lasting until now.
func (l *ledger) longestOutage(now time.Time) outage {
	l.mu.Lock()
	defer l.mu.Unlock()
	longest := l.longest
	for _, since := range l.failingSince {
		if o := (outage{since, now}); !since.IsZero() && o.duration() > longest.duration() {
			longest = o
		}
	}
	return longest
}

func (l *ledger) writeCounts() writeCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts
	c.AttemptsByStatus = make(map[string]int, len(l.counts.AttemptsByStatus))
	for k, v := range l.counts.AttemptsByStatus {
		c.AttemptsByStatus[k] = v
	}
	return c
}

// settled is the outcome of every finished round. Finished rounds never
// change, so it shares their slices with the ledger.
type settled struct {
	rounds [][]outcome
}

// steps is the number of finished rounds.
func (s *settled) steps() int { return len(s.rounds) }

// outcome of step k's batch b; pending for a step not finished.
func (s *settled) outcome(k, b int) outcome {
	if k < 0 || k >= len(s.rounds) {
		return pending
	}
	return s.rounds[k][b]
}
