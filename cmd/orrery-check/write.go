package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/orrery/orrery/loadgen"
)

// writer sends the workload round by round, in real time: round k when
// the clock reaches step k's timestamp, or at once when it is behind.
type writer struct {
	w        *workload
	l        *ledger
	clients  []*loadgen.Client
	retryFor time.Duration
	log      io.Writer
}

const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// run writes rounds until ctx ends. A round is finished (every batch
// settled) before the next one starts, so each series is written in time
// order even across retries.
func (wr *writer) run(ctx context.Context) {
	for k := 0; ; k++ {
		if !sleepCtx(ctx, time.Until(time.UnixMilli(wr.w.ts(k)))) {
			return
		}
		wr.l.startRound(k)
		var wg sync.WaitGroup
		for b := range wr.w.batches() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wr.l.settle(k, b, wr.send(ctx, k, b))
			}()
		}
		wg.Wait()
		wr.l.finishRound(k)
	}
}

// send writes batch b of round k, retrying what a remote-write client
// retries (5xx, 429, transport errors) with backoff for at most retryFor,
// each attempt to the next write URL. Once ctx ends it retries no more,
// but an attempt under way runs to its answer (or -write.timeout): cutting
// it would only turn an acknowledgement into an unknown.
func (wr *writer) send(ctx context.Context, k, b int) outcome {
	body, err := wr.w.request(b, k)
	if err != nil {
		fmt.Fprintf(wr.log, "orrery-check: %v\n", err)
		return rejected
	}
	giveUp := time.Now().Add(wr.retryFor)
	backoff := firstBackoff
	for attempt := 0; ; attempt++ {
		began := time.Now()
		err := wr.clients[(b+attempt)%len(wr.clients)].Send(context.WithoutCancel(ctx), body)
		status := statusClass(err)
		wr.l.attempt(b, status, began)
		switch status {
		case "2xx":
			return acked
		case "4xx":
			fmt.Fprintf(wr.log, "orrery-check: step %d batch %d refused, not retried: %v\n", k, b, err)
			return rejected
		}
		if attempt == 0 {
			fmt.Fprintf(wr.log, "orrery-check: step %d batch %d failed, retrying: %v\n", k, b, err)
		}
		if time.Now().After(giveUp) {
			fmt.Fprintf(wr.log, "orrery-check: step %d batch %d given up after %d attempts: %v\n", k, b, attempt+1, err)
			return uncertain
		}
		if !sleepCtx(ctx, backoff) {
			return uncertain
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// statusClass sorts a Send result into what the ledger counts: "2xx",
// "429", "5xx", "4xx" (permanent) or "error" (no HTTP answer).
func statusClass(err error) string {
	var se *loadgen.StatusError
	switch {
	case err == nil:
		return "2xx"
	case !errors.As(err, &se):
		return "error"
	case se.StatusCode == 429:
		return "429"
	case se.StatusCode >= 500:
		return "5xx"
	default:
		return "4xx"
	}
}
