package main

import (
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/lifecycle"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/ruler"
	"github.com/orrery/orrery/tenant"
)

// addRuler starts the ruler over this process's querier and distributor,
// or its own when the process runs neither: a ruler reads through the
// same fan-out and writes through the same validation as everyone else.
// It also serves the API's /rules and /alerts for the groups it evaluates.
func addRuler(cfg *Config, mgr *lifecycle.Manager, mux *http.ServeMux, member *ring.Member, pool *client.Pool, overrides *limits.Overrides,
	dist *distributor.Distributor, q *querier.Queryable, engine *promql.Engine, reg *prometheus.Registry, logger *slog.Logger, creds *tenant.Credentials) error {
	if dist == nil {
		var err error
		// No HA tracker: rule results carry no HA replica labels.
		dist, err = distributor.New(cfg.Distributor, member.Ring(), pool, overrides, nil, reg, logger.With("component", "distributor"))
		if err != nil {
			return err
		}
	}
	rc := cfg.Ruler
	rc.QueryTimeout = cfg.Querier.Timeout
	if rc.RulePath == "" {
		rc.RulePath = filepath.Join(cfg.DataDir, "rules")
	}
	// The rules configuration API's groups: on this ruler's disk, and on
	// every other ruler's through gossip (ruler.Store says why).
	store, err := ruler.OpenStore(filepath.Join(cfg.DataDir, "ruler", "api-rules.json"), cfg.InstanceID, logger.With("component", "ruler-store"))
	if err != nil {
		return err
	}
	if err := member.Share(ruler.StoreName, store); err != nil {
		return err
	}
	store.SetPublish(func(key string, msg []byte) { member.Publish(ruler.StoreName, key, msg) })
	r, err := ruler.New(rc, cfg.InstanceID, engine, q, dist, store, member.Ring(), member.Subscribe(), overrides, reg, logger.With("component", "ruler"))
	if err != nil {
		return err
	}
	mgr.Add("ruler", r)
	api := tenant.Middleware(cfg.AuthEnabled, creds, r.API(querier.PathPrefix, member.Ring(), logger.With("component", "ruler-api")))
	for _, p := range ruler.APIPaths {
		mux.Handle(querier.PathPrefix+p, api)
	}
	config := tenant.Middleware(cfg.AuthEnabled, creds, r.ConfigAPI(logger.With("component", "ruler-config-api")))
	mux.Handle(ruler.ConfigPath, config)
	mux.Handle(ruler.ConfigPath+"/", config)
	return nil
}
