// Command orrery runs one or all of Orrery's components; see -target.
package main

import (
	"context"
	"fmt"
	"github.com/prometheus/prometheus/promql"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/distributor/hatracker"
	"github.com/orrery/orrery/frontend"
	"github.com/orrery/orrery/frontend/queue"
	"github.com/orrery/orrery/ingester"
	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/lifecycle"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/otlp"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/ruler"
	"github.com/orrery/orrery/store"
	"github.com/orrery/orrery/tenant"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
)

// defaultGOGC halves the garbage collector's headroom from Go's 100: an
// ingester's heap is mostly long-lived series, and the CPU it costs is small
// next to the memory it saves (BENCHMARKS.md). Prometheus lowers it to 75.
// A GOGC environment variable wins.
const defaultGOGC = 50

func main() {
	if version.Version == "" {
		// A build without the Makefile's -ldflags (go run, go install).
		version.Version = "dev"
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	cfg, flags, err := loadConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "orrery:", err)
		os.Exit(2)
	}
	logger := newLogger(cfg)
	for _, door := range cfg.openDoors() {
		logger.Warn("-auth.enabled, but "+door, "docs", "docs/operations.md, Securing a cluster")
	}
	if err := run(cfg, flags, logger); err != nil {
		logger.Error("orrery failed", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg *Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("instance", cfg.InstanceID, "target", cfg.Target)
}

func run(cfg *Config, flags map[string]string, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("orrery"))
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	addr, err := cfg.advertisedAddr()
	if err != nil {
		return err
	}
	var creds *tenant.Credentials
	if cfg.AuthTokensFile != "" {
		if creds, err = tenant.LoadCredentials(cfg.AuthTokensFile); err != nil {
			return err
		}
	}
	authenticate := func(h http.Handler) http.Handler { return tenant.Middleware(cfg.AuthEnabled, creds, h) }
	// Reads may span tenants only when enabled; writes never do.
	authenticateRead := authenticate
	if cfg.TenantFederation.Enabled {
		authenticateRead = func(h http.Handler) http.Handler { return tenant.FederatedMiddleware(cfg.AuthEnabled, creds, h) }
	}
	admin, adminTenant, err := adminGate(cfg)
	if err != nil {
		return err
	}
	mgr := lifecycle.NewManager(logger)
	mux := http.NewServeMux()
	dialOpts, err := cfg.Security.IngesterClient.DialOptions()
	if err != nil {
		return err
	}
	pool := client.NewPool(dialOpts...)
	// Added first so that it closes last: handover still dials ingesters.
	mgr.Add("ingester-clients", lifecycle.Funcs{StopFunc: func(context.Context) error { return pool.Close() }})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	components := targets[cfg.Target]
	if cfg.runs(ruler.Component) && !cfg.runs("distributor") {
		// The ruler writes through a distributor of its own (addRuler),
		// which takes its share of each tenant's ingestion rate like any
		// other distributor: announced, it is counted when the rate is
		// divided, and the tenant's writes stay within the limit.
		components = append(slices.Clone(components), "distributor")
	}
	httpAddr, err := cfg.advertisedHTTPAddr(addr)
	if err != nil {
		return err
	}
	self := ring.Self{ID: cfg.InstanceID, Addr: addr, HTTPAddr: httpAddr, OwnsTokens: cfg.runs("ingester"), Components: components}
	if self.OwnsTokens {
		self.TokensFile = filepath.Join(cfg.DataDir, "tokens")
	}
	member, err := ring.NewMember(cfg.Ring, self, reg, logger.With("component", "ring"))
	if err != nil {
		return err
	}
	// Every component enforces its own tenants' limits, so every target
	// reads the overrides.
	overrides, err := limits.NewOverrides(cfg.RuntimeConfig, cfg.Limits, reg, logger.With("component", "limits"))
	if err != nil {
		return err
	}
	mgr.Add("overrides", overrides)
	var ing *ingester.Ingester
	if cfg.runs("ingester") {
		// The bbolt store is the ingester's chunks.Store; it is closed after
		// the ingester stops, which flushes into it.
		opts := store.DefaultOptions()
		opts.Path = filepath.Join(cfg.DataDir, "store.db")
		opts.BlockCacheBytes = cfg.StoreBlockCacheBytes
		st, err := store.Open(opts, reg, logger.With("component", "store"))
		if err != nil {
			return fmt.Errorf("ingester: open store: %w", err)
		}
		mgr.Add("store", lifecycle.Funcs{StopFunc: func(context.Context) error { return st.Close() }})
		ing, err = ingester.New(cfg.Ingester, cfg.DataDir, st, overrides, member.Ring(), reg, logger.With("component", "ingester"))
		if err != nil {
			return err
		}
	}
	var sched *queue.Scheduler
	if cfg.runs(queue.FrontendComponent) {
		sched = queue.NewScheduler(cfg.FrontendQueue, reg, logger.With("component", "query-frontend"))
	}
	if ing != nil || sched != nil {
		srv, err := newGRPCServer(cfg.Security.GRPCTLS)
		if err != nil {
			return err
		}
		if ing != nil {
			ingesterpb.RegisterIngesterServer(srv, ing)
			mgr.Add("ingester", ing)
			// A querier or ruler in this process reads this ingester
			// without gRPC (client.localClient says why).
			pool.ServeLocally(addr, ing)
			if err := servePushdown(srv, cfg, addr, pool, overrides, logger); err != nil {
				return err
			}
		}
		mgr.Add("grpc-server", &grpcServer{srv: srv, addr: cfg.GRPCListenAddress, logger: logger})
		if sched != nil {
			frontendpb.RegisterFrontendServer(srv, sched)
			// Stopped before the gRPC server: it ends the workers' streams.
			mgr.Add("query-frontend", sched)
		}
	}
	mgr.Add("ring", member)
	var ho *ingester.Leaver
	if ing != nil {
		ho = ingester.NewLeaver(ing, member, member.Ring(), pool, addr, cfg.Ingester.HandoverOnShutdown, reg, logger.With("component", "handover"))
		mux.Handle("POST /ingester/shutdown", admin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			logger.Info("shutdown requested over HTTP: leaving the ring with handover")
			ho.Request()
			fmt.Fprintln(w, "leaving: handing series over, then shutting down")
			stop()
		})))
		mux.Handle("POST /ingester/snapshot", admin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			serveSnapshot(w, ing, cfg, logger)
		})))
	}
	var dist *distributor.Distributor
	if cfg.runs("distributor") {
		ha, err := hatracker.New(cfg.Distributor.HATracker, func(key string, msg []byte) { member.Publish(hatracker.SharedName, key, msg) }, reg)
		if err != nil {
			return err
		}
		if err := member.Share(hatracker.SharedName, ha); err != nil {
			return err
		}
		dist, err = distributor.New(cfg.Distributor, member.Ring(), pool, overrides, ha, reg, logger.With("component", "distributor"))
		if err != nil {
			return err
		}
		mux.Handle("/api/v1/push", authenticate(dist))
		otlpCfg := cfg.OTLP
		otlpCfg.LookbackDelta = cfg.Querier.LookbackDelta
		export := authenticate(otlp.New(otlpCfg, dist, overrides, reg, logger.With("component", "otlp")))
		// Mimir's path, and Prometheus's.
		mux.Handle("/otlp/v1/metrics", export)
		mux.Handle("/api/v1/otlp/v1/metrics", export)
	}
	var q *querier.Queryable
	var engine *promql.Engine
	var queryAPI *querier.API
	if cfg.runs("querier") || cfg.runs(ruler.Component) {
		q = querier.NewQueryable(cfg.Querier, member.Ring(), pool, overrides, reg, logger.With("component", "querier"))
		engine = querier.NewEngine(cfg.Querier, reg, logger)
	}
	if cfg.runs("querier") {
		build := querier.BuildInfo{Version: version.Version, Revision: version.GetRevision(), Branch: version.Branch,
			BuildUser: version.BuildUser, BuildDate: version.BuildDate, GoVersion: runtime.Version()}
		configYAML, err := cfg.yaml()
		if err != nil {
			return err
		}
		api := querier.NewAPI(cfg.Querier, querier.NewPushdownEngine(cfg.Querier, engine, q, pool, reg), q, build, flags, configYAML, reg, logger.With("component", "querier"))
		queryAPI = api
		if sched != nil {
			// The frontend in this process serves the API; this querier
			// answers its queue directly.
			mgr.Add("query-workers", queue.NewLocalWorkers(sched, cfg.Querier.MaxConcurrent, api, logger.With("component", "query-workers")))
			// Remote read streams answers of any size; the queue's link
			// carries one bounded message, so it is served here directly,
			// under the querier's own admission as before.
			mux.Handle(querier.PathPrefix+"/read", authenticateRead(api))
		} else {
			mux.Handle(querier.PathPrefix+"/", authenticateRead(api))
		}
		// Workers carry the tenant the frontend authenticated, not a
		// credential: the API is served to them without authentication.
		mgr.Add("frontend-workers", queue.NewWorkers(cfg.FrontendWorker, cfg.InstanceID, cfg.Querier.MaxConcurrent, api,
			member.Ring(), member.Subscribe(), dialOpts, reg, logger.With("component", "frontend-workers")))
		mux.Handle(querier.FederatePath, authenticateRead(querier.NewFederation(cfg.Querier, q, logger.With("component", "federation"))))
	}
	// Deletion is an admin endpoint naming its tenant; more specific than
	// the API's pattern, so no tenant credential reaches it.
	var deletion http.Handler
	if sched != nil {
		fe, err := frontend.New(cfg.Frontend, sched, overrides, reg, logger.With("component", "query-frontend"))
		if err != nil {
			return err
		}
		mux.Handle(querier.PathPrefix+"/", authenticateRead(fe))
		deletion = http.HandlerFunc(fe.ServeDeleteSeries)
	} else if queryAPI != nil {
		deletion = queryAPI
	}
	if deletion != nil {
		for _, method := range []string{"POST ", "PUT "} {
			mux.Handle(method+querier.PathPrefix+querier.DeleteSeriesPath, adminTenant(deletion))
		}
		mux.Handle("POST "+querier.DeleteTenantPath, adminTenant(querier.DeleteTenant(deletion)))
	}
	if cfg.runs(ruler.Component) {
		if err := addRuler(cfg, mgr, mux, member, pool, overrides, dist, q, engine, reg, logger, creds); err != nil {
			return err
		}
	}
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !mgr.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/ring", member.ServeRing)
	// An admin endpoint, like POST /ingester/shutdown.
	mux.Handle("POST /ring/forget", admin(http.HandlerFunc(member.ServeForget)))
	mux.HandleFunc("/memberlist", member.ServeMemberlist)
	registerPprof(mux, cfg.Security.PprofEnabled, admin)
	mux.HandleFunc("/{$}", indexPage)
	mgr.Add("http-server", &httpServer{srv: newHTTPServer(cfg.Server, cfg.HTTPListenAddress, mux), logger: logger})
	if ho != nil {
		// Stopped first, while HTTP still serves /metrics and /ring: a
		// handover that fails stays visible while it retries.
		mgr.Add("handover", ho)
	}

	if err := mgr.Start(ctx); err != nil {
		return err
	}
	logger.Info("orrery ready", "version", version.Version, "revision", version.GetRevision(), "grpc_addr", addr)
	<-ctx.Done()
	logger.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Ingester.ShutdownTimeout)
	defer cancel()
	return mgr.Stop(stopCtx)
}

func indexPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!DOCTYPE html><html><head><title>Orrery</title></head><body><h1>Orrery</h1><ul>
<li><a href="/ring">Ring</a></li><li><a href="/memberlist">Memberlist</a></li>
<li><a href="/metrics">Metrics</a></li><li><a href="/ready">Ready</a></li>
<li>Remote write: POST /api/v1/push</li><li>Prometheus API: /prometheus/api/v1/</li></ul></body></html>`)
}
