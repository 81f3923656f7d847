package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/orrery/orrery/loadgen"
)

type config struct {
	writeURLs     []string
	readURLs      []string
	tenant        string
	runID         string
	series        int
	batch         int
	interval      time.Duration
	duration      time.Duration
	checkInterval time.Duration
	window        int
	lookback      time.Duration
	writeTimeout  time.Duration
	retryFor      time.Duration
	readTimeout   time.Duration
	finalTimeout  time.Duration
	jsonOut       bool
	jsonFile      string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var writeURLs, readURLs string
	fs := flag.NewFlagSet("orrery-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&writeURLs, "write.url", "http://127.0.0.1:9009/api/v1/push", "remote-write endpoints, comma-separated; a failed attempt is retried on the next")
	fs.StringVar(&readURLs, "read.url", "http://127.0.0.1:9009/prometheus", "Prometheus API prefixes (the part before /api/v1), comma-separated; a failed read goes to the next")
	fs.StringVar(&cfg.tenant, "tenant", "", "X-Scope-OrgID of writes and reads (none if empty)")
	fs.StringVar(&cfg.runID, "run-id", "", "value of the run label of every series (default: the start time); runs never share series")
	fs.IntVar(&cfg.series, "series", 40, "series written, half counters and half sine waves")
	fs.IntVar(&cfg.batch, "batch", 10, "series per write request")
	fs.DurationVar(&cfg.interval, "interval", time.Second, "time between two samples of a series, in data time and in real time")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Minute, "how long to write; 0 writes until SIGINT or SIGTERM. Then the final read runs")
	fs.DurationVar(&cfg.checkInterval, "check.interval", 5*time.Second, "pause between two read-back passes over everything written")
	fs.IntVar(&cfg.window, "check.window-steps", 300, "steps per query")
	fs.DurationVar(&cfg.lookback, "query.lookback-delta", 5*time.Minute, "the queriers' -querier.lookback-delta, for checking query_range answers")
	fs.DurationVar(&cfg.writeTimeout, "write.timeout", 10*time.Second, "timeout of one write attempt")
	fs.DurationVar(&cfg.retryFor, "write.retry-for", 30*time.Second, "give a failed write up after retrying it this long; its samples then count as uncertain")
	fs.DurationVar(&cfg.readTimeout, "read.timeout", 30*time.Second, "timeout of one query")
	fs.DurationVar(&cfg.finalTimeout, "final.timeout", 2*time.Minute, "how long the final read may retry before the report says it is incomplete")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as one JSON object")
	fs.StringVar(&cfg.jsonFile, "report.json", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.writeURLs = strings.Split(writeURLs, ",")
	cfg.readURLs = strings.Split(readURLs, ",")
	if cfg.runID == "" {
		cfg.runID = time.Now().UTC().Format("20060102T150405Z")
	}
	return cfg, validate(cfg)
}

func validate(cfg config) error {
	for _, u := range append(append([]string(nil), cfg.writeURLs...), cfg.readURLs...) {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("url %q: want an absolute http(s) URL", u)
		}
	}
	ms := cfg.interval.Milliseconds()
	switch {
	case cfg.series <= 0 || cfg.batch <= 0 || cfg.window <= 0:
		return errors.New("-series, -batch and -check.window-steps must be positive")
	case ms <= 0 || cfg.interval != time.Duration(ms)*time.Millisecond:
		return errors.New("-interval must be a positive whole number of milliseconds")
	case time.Duration(float64(ms)/1000*float64(time.Second)) != cfg.interval:
		// query_range takes its step in float seconds; the queriers must
		// evaluate exactly at the sample timestamps.
		return fmt.Errorf("-interval %v is not exact in float seconds; use whole seconds or halves", cfg.interval)
	case cfg.duration < 0 || cfg.checkInterval <= 0 || cfg.lookback <= 0:
		return errors.New("-duration must not be negative, -check.interval and -query.lookback-delta must be positive")
	case cfg.writeTimeout <= 0 || cfg.retryFor < 0 || cfg.readTimeout <= 0 || cfg.finalTimeout <= 0:
		return errors.New("-write.timeout, -read.timeout and -final.timeout must be positive, -write.retry-for not negative")
	}
	return nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-check:", err)
		os.Exit(2)
	}
	rep, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-check:", err)
		os.Exit(2)
	}
	if cfg.jsonOut {
		err = rep.writeJSON(os.Stdout)
	} else {
		rep.writeText(os.Stdout)
	}
	if err == nil && cfg.jsonFile != "" {
		err = writeJSONFile(cfg.jsonFile, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-check: writing report:", err)
		os.Exit(1)
	}
	if !rep.OK {
		os.Exit(1)
	}
}

// run writes and checks until -duration or a signal, then reads
// everything back once more and reports. A second signal cuts the final
// read short (the report then says it is incomplete).
func run(cfg config, logw io.Writer) (*report, error) {
	r, err := newReader(cfg.readURLs, cfg.tenant, cfg.readTimeout)
	if err != nil {
		return nil, err
	}
	step := cfg.interval.Milliseconds()
	start := (time.Now().UnixMilli()/step + 1) * step
	w := newWorkload(cfg.runID, cfg.series, cfg.batch, start, step)
	l := newLedger(w.batches())
	wr := &writer{w: w, l: l, retryFor: cfg.retryFor, log: logw}
	for _, u := range cfg.writeURLs {
		c := loadgen.NewClient(u, cfg.tenant, cfg.writeTimeout)
		defer c.CloseIdleConnections()
		wr.clients = append(wr.clients, c)
	}
	c := &checker{w: w, l: l, r: r, window: cfg.window, lookback: cfg.lookback, log: logw}
	fmt.Fprintf(logw, "orrery-check: run %s: %d series, a sample each every %v, from %s\n", cfg.runID, cfg.series, cfg.interval, time.UnixMilli(start).UTC().Format(time.RFC3339))

	began := time.Now()
	writing, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		writing, cancel = context.WithTimeout(writing, cfg.duration)
		defer cancel()
	}
	written := make(chan struct{})
	go func() {
		wr.run(writing)
		close(written)
	}()
	for sleepCtx(writing, cfg.checkInterval) {
		c.pass(writing)
		st, _ := c.readStats()
		fmt.Fprintf(logw, "orrery-check: %d steps written; %d answers, %d mismatched, %d reads failed\n", l.snapshot().steps(), st.Answers, st.MismatchedAnswers, st.ReadsFailed)
	}
	<-written
	stop()
	ended := time.Now()

	finalCtx, stopFinal := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopFinal()
	finalCtx, cancel := context.WithTimeout(finalCtx, cfg.finalTimeout)
	defer cancel()
	fmt.Fprintln(logw, "orrery-check: writes stopped; final read")
	missing, complete := c.final(finalCtx, time.Second)
	return newReport(w, l, c, ended.Sub(began), ended, missing, complete), nil
}
