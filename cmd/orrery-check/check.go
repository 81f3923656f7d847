package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// maxProblems bounds how many differences a report lists.
const maxProblems = 20

// checker reads the workload back and tallies what it finds. Passes run
// one at a time; its counters are safe for concurrent reads by report.
type checker struct {
	w        *workload
	l        *ledger
	r        *reader
	window   int // steps per query
	lookback time.Duration
	log      io.Writer

	mu       sync.Mutex
	stats    readStats
	problems []string
}

// readStats are the totals of every answer checked.
type readStats struct {
	Answers             int `json:"answers"`
	MismatchedAnswers   int `json:"mismatched_answers"`
	AnswersWithWarnings int `json:"answers_with_warnings"`
	ReadsFailed         int `json:"reads_failed"`
}

// windows splits steps [0, n) into query windows [lo, hi].
func (c *checker) windows(n int) [][2]int {
	var out [][2]int
	for lo := 0; lo < n; lo += c.window {
		out = append(out, [2]int{lo, min(lo+c.window, n) - 1})
	}
	return out
}

// pass checks every finished step once, raw and by query_range; a failed
// read is counted and the pass goes on.
func (c *checker) pass(ctx context.Context) {
	s := c.l.snapshot()
	for _, win := range c.windows(s.steps()) {
		if ctx.Err() != nil {
			return
		}
		lo, hi := win[0], win[1]
		if a, err := c.r.raw(ctx, c.w, lo, hi); c.tally(ctx, "raw", err, lo, hi) {
			c.judge("raw", a, checkRaw(c.w, s, a.matrix, lo, hi))
		}
		if a, err := c.r.steps(ctx, c.w, lo, hi); c.tally(ctx, "query_range", err, lo, hi) {
			c.judge("query_range", a, checkRange(c.w, s, a.matrix, lo, hi, c.lookback))
		}
	}
}

// tally counts a read and reports whether it has an answer to judge. A
// read cut short by the checker's own stop is not counted.
func (c *checker) tally(ctx context.Context, kind string, err error, lo, hi int) bool {
	if err != nil && ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.stats.ReadsFailed++
		fmt.Fprintf(c.log, "orrery-check: %s read of steps %d-%d failed: %v\n", kind, lo, hi, err)
		return false
	}
	c.stats.Answers++
	return true
}

func (c *checker) judge(kind string, a answer, v verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	warned := len(a.warnings) > 0
	if warned {
		c.stats.AnswersWithWarnings++
	}
	if !v.mismatched(warned) {
		return
	}
	c.stats.MismatchedAnswers++
	p := fmt.Sprintf("%s %s: %d missing, %d extra, %d wrong; first: %s", time.Now().UTC().Format("15:04:05"), kind, v.Missing, v.Extra, v.Wrong, v.Example)
	fmt.Fprintln(c.log, "orrery-check: MISMATCH", p)
	if len(c.problems) < maxProblems {
		c.problems = append(c.problems, p)
	}
}

// final reads every finished step once more, retrying each window until
// an answer without warnings arrives or ctx ends, and returns how many
// acknowledged samples the answers lack and whether every window was read.
// Every answer is judged as in a pass.
func (c *checker) final(ctx context.Context, retry time.Duration) (missing int, complete bool) {
	s := c.l.snapshot()
	complete = true
	for _, win := range c.windows(s.steps()) {
		lo, hi := win[0], win[1]
		var last *verdict
		for {
			a, err := c.r.raw(ctx, c.w, lo, hi)
			if c.tally(ctx, "final raw", err, lo, hi) {
				v := checkRaw(c.w, s, a.matrix, lo, hi)
				c.judge("final raw", a, v)
				last = &v
				if len(a.warnings) == 0 {
					break
				}
			}
			if !sleepCtx(ctx, retry) {
				break
			}
		}
		if last == nil {
			complete = false
			continue
		}
		missing += last.Missing
		if a, err := c.r.steps(ctx, c.w, lo, hi); c.tally(ctx, "final query_range", err, lo, hi) {
			c.judge("final query_range", a, checkRange(c.w, s, a.matrix, lo, hi, c.lookback))
		}
	}
	return missing, complete
}

func (c *checker) readStats() (readStats, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, append([]string(nil), c.problems...)
}

// sleepCtx waits d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
