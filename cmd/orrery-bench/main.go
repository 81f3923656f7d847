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
	"syscall"
	"time"

	"github.com/orrery/orrery/loadgen"
)

// config holds the command-line flags.
type config struct {
	url         string
	tenant      string
	series      int
	batch       int
	rate        float64
	duration    time.Duration
	concurrency int
	interval    time.Duration
	start       string
	pid         int
	seed        int64
	jsonOut     bool
	pregenMiB   int
	maxRounds   int
	timeout     time.Duration
	histograms  bool
	otlp        bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("orrery-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:9009/api/v1/push", "remote write endpoint; the only address the tool sends to")
	fs.StringVar(&cfg.tenant, "tenant", "", "X-Scope-OrgID header value (none if empty)")
	fs.IntVar(&cfg.series, "series", 100000, "number of series")
	fs.IntVar(&cfg.batch, "batch", 2000, "samples (series) per request; each request holds one sample per series")
	fs.Float64Var(&cfg.rate, "rate", 0, "offered samples per second; 0 sends flat out")
	fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "length of the timed phase")
	fs.IntVar(&cfg.concurrency, "concurrency", 4, "requests in flight")
	fs.DurationVar(&cfg.interval, "interval", 15*time.Second, "data-time step between successive samples of a series")
	fs.StringVar(&cfg.start, "start", "", "timestamp of the first round (RFC 3339 or Unix ms); default: so that the expected rounds end near now")
	fs.IntVar(&cfg.pid, "pid", 0, "process whose CPU time and RSS are sampled at start and end")
	fs.Int64Var(&cfg.seed, "seed", 1, "workload seed")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the summary as one JSON line")
	fs.IntVar(&cfg.pregenMiB, "pregen-mib", 2048, "memory budget for request bodies generated before the timed phase")
	fs.IntVar(&cfg.maxRounds, "max-rounds", 0, "stop after this many rounds even before -duration (0: no limit)")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.BoolVar(&cfg.otlp, "otlp", false, "send OTLP/HTTP protobuf exports (the same samples as gauges and cumulative sums, job and instance as the resource) to an OTLP metrics URL instead of remote write")
	fs.BoolVar(&cfg.histograms, "native-histograms", false, "send each series as a native histogram (20 buckets at schema 3) instead of a float; samples then count histograms")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, validate(cfg)
}

func validate(cfg config) error {
	u, err := url.Parse(cfg.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want an absolute http(s) URL", cfg.url)
	}
	switch {
	case cfg.series <= 0, cfg.batch <= 0, cfg.concurrency <= 0:
		return errors.New("-series, -batch and -concurrency must be positive")
	case cfg.duration <= 0 || cfg.timeout <= 0:
		return errors.New("-duration and -timeout must be positive")
	case cfg.rate < 0 || cfg.pregenMiB < 0 || cfg.maxRounds < 0:
		return errors.New("-rate, -pregen-mib and -max-rounds must not be negative")
	case cfg.otlp && cfg.histograms:
		return errors.New("-otlp sends floats only: leave out -native-histograms")
	}
	return nil
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "query":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := queryMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		case "query-report":
			os.Exit(queryReportMain(os.Args[2:], os.Stdout, os.Stderr))
		case "store-size":
			os.Exit(storeSizeMain(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := bench(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-bench:", err)
		os.Exit(1)
	}
	if cfg.jsonOut {
		err = s.writeJSON(os.Stdout)
	} else {
		s.writeText(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery-bench: writing summary:", err)
		os.Exit(1)
	}
	if s.SamplesAccepted == 0 {
		// Scripts must notice a target that accepted nothing.
		os.Exit(3)
	}
}

// bench prepares the workload, runs the timed phase and summarises it.
// Progress notes go to logw so stdout carries only the summary.
func bench(ctx context.Context, cfg config, logw io.Writer) (*summary, error) {
	gen := loadgen.NewWithSeries(cfg.seed, cfg.series)
	probe, err := makePlan(cfg, time.Now(), 1)
	if err != nil {
		return nil, err
	}
	p, err := makePlan(cfg, time.Now(), measureRound(gen, probe))
	if err != nil {
		return nil, err
	}
	prepStart := time.Now()
	bodies := pregenerate(gen, p)
	fmt.Fprintf(logw, "orrery-bench: pregenerated %d rounds (%d requests) in %v\n",
		p.pregen, len(bodies), time.Since(prepStart).Round(time.Millisecond))
	client := loadgen.NewClient(cfg.url, cfg.tenant, cfg.timeout)
	if cfg.otlp {
		client = loadgen.NewOTLPClient(cfg.url, cfg.tenant, cfg.timeout)
	}
	defer client.CloseIdleConnections()
	r := &runner{
		gen: gen, plan: p, bodies: bodies, client: client,
		pacer: newPacer(cfg.rate), maxRounds: cfg.maxRounds,
		workers: min(cfg.concurrency, p.batches),
	}
	s := &summary{
		URL: cfg.url, Series: cfg.series, Batch: cfg.batch, Concurrency: r.workers,
		RateLimit: cfg.rate, PregeneratedRounds: p.pregen, PID: cfg.pid,
	}
	var before procSample
	if cfg.pid != 0 {
		if before, err = readProc(cfg.pid); err != nil {
			return nil, err
		}
	}
	cpuBefore := selfCPU()
	start := time.Now()
	timed, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	t := r.run(timed, ctx)
	s.fillOutcome(t, time.Since(start), p)
	s.ToolCPUSeconds = selfCPU() - cpuBefore
	if cfg.pid != 0 {
		// The target may have died under load; report what was sent anyway.
		if after, err := readProc(cfg.pid); err != nil {
			s.TargetError = err.Error()
		} else {
			s.fillTarget(before, after)
		}
	}
	return s, nil
}
