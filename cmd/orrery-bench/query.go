package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// queryConfig holds the flags of the query subcommand.
type queryConfig struct {
	url         string // API prefix; /api/v1/query_range is appended
	queriesFile string
	start, end  time.Time
	step        time.Duration
	runs        int
	warmup      int
	tenant      string
	params      url.Values // extra form parameters sent with every query
	noStore     bool       // send Cache-Control: no-store, which Orrery's frontend honours
	timeout     time.Duration
	jsonOut     bool
}

func parseQueryFlags(args []string, stderr io.Writer) (queryConfig, error) {
	var (
		cfg               queryConfig
		start, end, extra string
	)
	fs := flag.NewFlagSet("orrery-bench query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:9009/prometheus", "Prometheus API prefix (/api/v1/query_range is appended); the only address the tool sends to")
	fs.StringVar(&cfg.queriesFile, "queries", "", "file of range queries, one a line; blank lines and lines starting with # are skipped")
	fs.StringVar(&start, "start", "", "range start (RFC 3339 or Unix seconds)")
	fs.StringVar(&end, "end", "", "range end (RFC 3339 or Unix seconds)")
	fs.DurationVar(&cfg.step, "step", time.Minute, "range query resolution")
	fs.IntVar(&cfg.runs, "runs", 3, "timed runs per query; the median is reported")
	fs.IntVar(&cfg.warmup, "warmup", 1, "untimed runs per query before the timed ones")
	fs.StringVar(&cfg.tenant, "tenant", "", "X-Scope-OrgID header value (none if empty)")
	fs.StringVar(&extra, "params", "", "extra form parameters for every query, URL-encoded (e.g. nocache=1)")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "timeout of one query")
	fs.BoolVar(&cfg.noStore, "no-store", false, "send Cache-Control: no-store, so that a results cache that honours it (Orrery's query frontend) is bypassed")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the result as one JSON line")
	if err := fs.Parse(args); err != nil {
		return queryConfig{}, err
	}
	if fs.NArg() > 0 {
		return queryConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.start, err = parseQueryTime("-start", start); err != nil {
		return queryConfig{}, err
	}
	if cfg.end, err = parseQueryTime("-end", end); err != nil {
		return queryConfig{}, err
	}
	if cfg.params, err = url.ParseQuery(extra); err != nil {
		return queryConfig{}, fmt.Errorf("-params %q: %w", extra, err)
	}
	return cfg, validateQuery(cfg)
}

func validateQuery(cfg queryConfig) error {
	u, err := url.Parse(cfg.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want an absolute http(s) URL", cfg.url)
	}
	for _, p := range []string{"query", "start", "end", "step"} {
		if cfg.params.Has(p) {
			return fmt.Errorf("-params must not set %q, which the tool sends itself", p)
		}
	}
	switch {
	case cfg.queriesFile == "":
		return errors.New("-queries is required")
	case !cfg.end.After(cfg.start):
		return fmt.Errorf("-end %v must be after -start %v", cfg.end, cfg.start)
	case cfg.step <= 0 || cfg.timeout <= 0:
		return errors.New("-step and -timeout must be positive")
	case cfg.runs <= 0 || cfg.warmup < 0:
		return errors.New("-runs must be positive and -warmup not negative")
	}
	return nil
}

// parseQueryTime accepts RFC 3339 or Unix seconds, possibly fractional, the
// two forms the Prometheus API accepts.
func parseQueryTime(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is required", flagName)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 or Unix seconds", flagName, s)
	}
	return t, nil
}

// readQueries returns the non-blank lines of r that are not # comments.
func readQueries(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no queries")
	}
	return out, nil
}

// median returns the middle value of ds, the mean of the two middle ones
// for an even count, and 0 for none. ds is not modified.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// geomean returns the geometric mean of positive values, computed through
// logarithms so long lists cannot overflow; ok is false when there are no
// values or one is not positive (a ratio of such a mean would mislead).
func geomean(vs []float64) (mean float64, ok bool) {
	if len(vs) == 0 {
		return 0, false
	}
	var sum float64
	for _, v := range vs {
		if !(v > 0) || math.IsInf(v, 1) {
			return 0, false
		}
		sum += math.Log(v)
	}
	return math.Exp(sum / float64(len(vs))), true
}

// apiResponse is the part of a Prometheus API answer the tool checks.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Values [][2]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// resultShape is what a range query returned: enough to notice a target
// answering something different from the others, without comparing values.
type resultShape struct {
	Series int `json:"series"`
	Points int `json:"points"`
}

// checkResponse turns an HTTP answer into its shape, or an error that says
// why the answer is not a successful matrix.
func checkResponse(status int, body []byte) (resultShape, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return resultShape{}, fmt.Errorf("HTTP %d, body is not a Prometheus API answer: %w: %.200q", status, err, body)
	}
	if status != http.StatusOK || r.Status != "success" {
		return resultShape{}, fmt.Errorf("HTTP %d, status %q: %s: %s", status, r.Status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "matrix" {
		return resultShape{}, fmt.Errorf("result type %q, want matrix", r.Data.ResultType)
	}
	shape := resultShape{Series: len(r.Data.Result)}
	for _, s := range r.Data.Result {
		shape.Points += len(s.Values)
	}
	return shape, nil
}

// queryClient sends range queries to one API prefix.
type queryClient struct {
	endpoint string
	tenant   string
	noStore  bool
	form     url.Values // start, end, step and the extra parameters
	hc       *http.Client
}

func newQueryClient(cfg queryConfig) *queryClient {
	form := url.Values{}
	for k, v := range cfg.params {
		form[k] = slices.Clone(v)
	}
	form.Set("start", formatQueryTime(cfg.start))
	form.Set("end", formatQueryTime(cfg.end))
	form.Set("step", strconv.FormatFloat(cfg.step.Seconds(), 'f', -1, 64))
	transport := &http.Transport{
		// No proxy and no redirects: only the URL given is ever queried.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &queryClient{
		endpoint: strings.TrimSuffix(cfg.url, "/") + "/api/v1/query_range",
		tenant:   cfg.tenant,
		noStore:  cfg.noStore,
		form:     form,
		hc: &http.Client{
			Transport:     transport,
			Timeout:       cfg.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func formatQueryTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64)
}

// do sends one query as a form POST, as Grafana does, and returns the time
// until the whole body was read; decoding and checking happen after it.
func (c *queryClient) do(ctx context.Context, query string) (time.Duration, resultShape, error) {
	form := url.Values{"query": {query}}
	for k, v := range c.form {
		form[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, resultShape{}, fmt.Errorf("building request for %s: %w", c.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "orrery-bench")
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	if c.noStore {
		req.Header.Set("Cache-Control", "no-store")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, resultShape{}, fmt.Errorf("querying %s: %w", c.endpoint, err)
	}
	body, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, resultShape{}, fmt.Errorf("reading the answer of %s: %w", c.endpoint, err)
	}
	shape, err := checkResponse(resp.StatusCode, body)
	return elapsed, shape, err
}

// queryResult is one query's timing; Runs are in the order they were made.
type queryResult struct {
	Query    string    `json:"query"`
	MedianMs float64   `json:"median_ms"`
	RunsMs   []float64 `json:"runs_ms"`
	resultShape
}

// queryReport is the outcome of the query subcommand; its JSON form is what
// the query-report subcommand and scripts consume.
type queryReport struct {
	URL        string        `json:"url"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	StepS      float64       `json:"step_s"`
	Runs       int           `json:"runs"`
	Warmup     int           `json:"warmup"`
	Queries    []queryResult `json:"queries"`
	GeomeanMs  float64       `json:"geomean_ms"`
	TotalMs    float64       `json:"total_ms"`
	ElapsedSec float64       `json:"elapsed_s"`
}

// timeQueries runs every query warmup times untimed, then runs times, and
// stops at the first answer that is not a successful matrix: a benchmark of
// errors is no benchmark. Progress goes to logw.
func timeQueries(ctx context.Context, cfg queryConfig, queries []string, logw io.Writer) (*queryReport, error) {
	c := newQueryClient(cfg)
	defer c.hc.CloseIdleConnections()
	rep := &queryReport{
		URL: cfg.url, Start: cfg.start, End: cfg.end, StepS: cfg.step.Seconds(),
		Runs: cfg.runs, Warmup: cfg.warmup,
	}
	began := time.Now()
	medians := make([]float64, 0, len(queries))
	for i, q := range queries {
		res := queryResult{Query: q}
		var timed []time.Duration
		for run := 0; run < cfg.warmup+cfg.runs; run++ {
			d, shape, err := c.do(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("query %d %q: %w", i+1, q, err)
			}
			res.resultShape = shape
			if run >= cfg.warmup {
				timed = append(timed, d)
				res.RunsMs = append(res.RunsMs, ms(d))
			}
		}
		res.MedianMs = ms(median(timed))
		medians = append(medians, res.MedianMs)
		rep.TotalMs += res.MedianMs
		rep.Queries = append(rep.Queries, res)
		fmt.Fprintf(logw, "orrery-bench: query %d: %.1f ms median, %d series: %s\n", i+1, res.MedianMs, res.Series, q)
	}
	rep.GeomeanMs, _ = geomean(medians)
	rep.ElapsedSec = time.Since(began).Seconds()
	return rep, nil
}

func (r *queryReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "target: %s, %s .. %s, step %gs, median of %d after %d warm-up\n",
		r.URL, r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), r.StepS, r.Runs, r.Warmup)
	for i, q := range r.Queries {
		fmt.Fprintf(w, "%3d %10.1f ms %7d series  %s\n", i+1, q.MedianMs, q.Series, q.Query)
	}
	fmt.Fprintf(w, "geometric mean %.1f ms, sum of medians %.1f ms\n", r.GeomeanMs, r.TotalMs)
}

// queryMain is the query subcommand; it returns the process exit code.
func queryMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseQueryFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench query:", err)
		return 2
	}
	f, err := os.Open(cfg.queriesFile)
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench query:", err)
		return 2
	}
	queries, err := readQueries(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "orrery-bench query: reading %s: %v\n", cfg.queriesFile, err)
		return 2
	}
	rep, err := timeQueries(ctx, cfg, queries, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench query:", err)
		return 1
	}
	if cfg.jsonOut {
		err = json.NewEncoder(stdout).Encode(rep)
	} else {
		rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench query: writing the result:", err)
		return 1
	}
	return 0
}
