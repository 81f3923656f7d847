package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/querier/resultcodec"
	"github.com/orrery/orrery/querier/shard"
	"github.com/orrery/orrery/tenant"
)

// PathPrefix is where the Prometheus HTTP API is served, as in Mimir.
const PathPrefix = "/prometheus/api/v1"

// BuildInfo is what /status/buildinfo reports.
type BuildInfo = v1.PrometheusVersion

// served lists the upstream API's endpoints Orrery answers; the rest (targets,
// rules, admin, remote write into the querier…) belong to a Prometheus
// server, not to this store, and are 404.
var served = []string{
	"/query", "/query_range", "/query_exemplars", "/format_query", "/parse_query",
	"/labels", "/label/", "/series", "/status/buildinfo", "/status/flags", "/status/runtimeinfo", "/read",
}

// API serves the Prometheus HTTP API over a queryable.
type API struct {
	handler    http.Handler
	configYAML string
	q          *Queryable
	logger     *slog.Logger
}

// NewEngine returns the upstream PromQL engine configured as Prometheus
// configures it, so results are the same.
//
// Its own timeout is unbounded: the API puts each query's deadline in its
// context, the tenant's query_timeout or -querier.timeout, and a tenant's
// may be longer than the flag. The engine reports an expired context as
// Prometheus's timeout error all the same.
func NewEngine(cfg Config, reg prometheus.Registerer, logger *slog.Logger) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:        logger.With("component", "query engine"),
		Reg:           reg,
		MaxSamples:    cfg.MaxSamples,
		Timeout:       time.Duration(math.MaxInt64),
		LookbackDelta: cfg.LookbackDelta,
		// Prometheus's default global evaluation interval.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	})
}

// NewAPI returns the Prometheus HTTP API under PathPrefix.
// configYAML is Orrery's effective configuration, served by status/config.
func NewAPI(cfg Config, engine promql.QueryEngine, q *Queryable, build BuildInfo, flags map[string]string, configYAML string, reg *prometheus.Registry, logger *slog.Logger) *API {
	start := time.Now()
	runtimeInfo := func() (v1.RuntimeInfo, error) {
		cwd, _ := os.Getwd()
		host, _ := os.Hostname()
		return v1.RuntimeInfo{StartTime: start, CWD: cwd, Hostname: host, GoroutineCount: runtime.NumGoroutine(), GOMAXPROCS: runtime.GOMAXPROCS(0), GOGC: os.Getenv("GOGC")}, nil
	}
	api := v1.NewAPI(engine, q, nil, q,
		nil, nil, nil,
		func() config.Config { return config.DefaultConfig },
		flags,
		v1.GlobalURLOptions{ListenAddress: "", Host: "", Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0,
		logger, nil,
		5e7, 10, 1048576,
		false, nil, runtimeInfo, &build,
		nil, nil,
		reg, reg, nil,
		false, nil, false, false, false,
		cfg.LookbackDelta, false, false, nil, nil,
		v1.OpenAPIOptions{}, parser.NewParser(parser.Options{}), false, cfg.Timeout,
	)
	r := route.New().WithPrefix(PathPrefix)
	// Query frontends ask for the binary answer (resultcodec); everyone
	// else gets the API's JSON.
	api.InstallCodec(resultcodec.Codec{})
	api.Register(r)
	return &API{handler: r, configYAML: configYAML, q: q, logger: logger}
}

// ServeHTTP serves the endpoints in served and metadata, at most
// MaxConcurrent reads at once (with /federate).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, PathPrefix)
	switch path {
	case "/metadata":
		release, ok := a.q.admit(r.Context())
		if !ok {
			return
		}
		defer release()
		a.serveMetadata(w, r)
		return
	case DeleteSeriesPath:
		a.serveDeleteSeries(w, r)
		return
	case DeletionGenerationPath:
		a.serveDeletionGeneration(w, r)
		return
	case "/status/config":
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			Data   struct {
				YAML string `json:"yaml"`
			} `json:"data"`
		}{Status: "success", Data: struct {
			YAML string `json:"yaml"`
		}{a.configYAML}})
		return
	}
	if !isServed(path) {
		http.NotFound(w, r)
		return
	}
	if v := r.Header.Get(shard.Header); v != "" {
		// One shard of a query the frontend split: every select of it
		// reads only the series of that shard (querier.Select).
		i, n, err := shard.Parse(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("header %s: %s", shard.Header, err))
			return
		}
		r = r.WithContext(shard.WithShard(r.Context(), i, n))
	}
	// The limits are read on every request, so a reloaded overrides file
	// applies from the next one. A request without a tenant gets none
	// here and is refused by the queryable.
	ids, _ := tenant.IDsFromContext(r.Context())
	lim := a.q.limitsOf(ids)
	if err := checkQueryLength(r, path, lim.maxLength); err != nil {
		a.q.rejected.WithLabelValues(tenant.JoinIDs(ids), reasonMaxLength).Inc()
		writeError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	release, ok := a.q.admit(r.Context())
	if !ok {
		return
	}
	defer release()
	if path != "/query" && path != "/query_range" {
		a.handler.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	// The query's deadline, which the engine turns into Prometheus's
	// timeout error and fanout into cancelled ingester streams.
	ctx, cancel := context.WithTimeout(r.Context(), lim.timeout)
	defer cancel()
	ctx, st := withFetchStats(ctx)
	r = r.WithContext(ctx)
	// Parsed here, so the query log reads a POSTed query too: the API's
	// handler reads the body on a copy of the request, which this one
	// would not see. The handler finds the form parsed and its errors
	// are its own to answer.
	_ = r.ParseForm()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	a.handler.ServeHTTP(rec, r)
	if rec.code == http.StatusServiceUnavailable && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		a.q.rejected.WithLabelValues(tenant.JoinIDs(ids), reasonTimeout).Inc()
	}
	logQuery(a.logger, r, rec.code, time.Since(start), st)
}

func isServed(path string) bool {
	for _, p := range served {
		if path == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}
