package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/orrery/orrery/tenant"
)

// adminGate returns the wrappers of every admin endpoint: admin for POST
// /ingester/shutdown, /debug/pprof and any flush or snapshot endpoint
// added later, and adminTenant for those acting on one tenant's data
// (delete_series), which name it in X-Scope-OrgID.
func adminGate(cfg *Config) (admin, adminTenant func(http.Handler) http.Handler, err error) {
	var admins *tenant.Admins
	if cfg.Security.AdminTokensFile != "" {
		if admins, err = tenant.LoadAdmins(cfg.Security.AdminTokensFile); err != nil {
			return nil, nil, err
		}
	}
	return func(h http.Handler) http.Handler { return tenant.AdminMiddleware(cfg.AuthEnabled, admins, h) },
		func(h http.Handler) http.Handler { return tenant.AdminTenantMiddleware(cfg.AuthEnabled, admins, h) }, nil
}

// registerPprof serves /debug/pprof behind admin when enabled; otherwise
// the paths are not registered and answer 404 like any unknown path.
func registerPprof(mux *http.ServeMux, enabled bool, admin func(http.Handler) http.Handler) {
	if !enabled {
		return
	}
	mux.Handle("/debug/pprof/", admin(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", admin(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", admin(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", admin(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", admin(http.HandlerFunc(pprof.Trace)))
}
