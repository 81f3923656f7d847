package ruler

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/tenant"
)

// APIPaths are the Prometheus HTTP API's endpoints the ruler answers,
// under the API's prefix.
var APIPaths = []string{"/rules", "/alerts"}

// API returns Prometheus's own /rules and /alerts handlers under prefix,
// answering for the tenant of each request with the groups this ruler
// evaluates, in exactly Prometheus's response shape.
func (r *Ruler) API(prefix string, logger *slog.Logger) http.Handler {
	retriever := func(ctx context.Context) v1.RulesRetriever {
		id, err := tenant.FromContext(ctx)
		if err != nil {
			return noRules{}
		}
		return r.RulesFor(id)
	}
	own := prometheus.NewRegistry()
	api := v1.NewAPI(r.engine, nil, nil, nil,
		nil, nil, func(context.Context) v1.AlertmanagerRetriever { return noAlertmanagers{} },
		func() config.Config { return config.DefaultConfig },
		nil,
		v1.GlobalURLOptions{Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0,
		logger, retriever,
		0, 0, 0,
		false, nil, nil, nil,
		nil, nil,
		// Its own registry: the API registers remote-read metrics that
		// the querier's API registers too, and serves no remote read here.
		own, own, nil,
		false, nil, false, false, false,
		5*time.Minute, false, false, nil, nil,
		v1.OpenAPIOptions{}, parser.NewParser(parser.Options{}), false, 0,
	)
	rt := route.New().WithPrefix(prefix)
	api.Register(rt)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := strings.TrimPrefix(req.URL.Path, prefix)
		for _, p := range APIPaths {
			if path == p {
				rt.ServeHTTP(w, req)
				return
			}
		}
		http.NotFound(w, req)
	})
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }
