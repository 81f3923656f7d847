package frontend

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/teststorage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/querier"
)

// TestAuditAvgOverflow: Prometheus's avg switches to an incremental mean
// when the sum would overflow, so avg of values near the float maximum is
// finite; sharded, avg is sum / count and the sums overflow to +Inf.
func TestAuditAvgOverflow(t *testing.T) {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	for k, v := range []float64{1.5e308, 1.5e308, 1.0e308, 1.2e308} {
		ls := labels.FromStrings("__name__", "big", "i", string(rune('a'+k)))
		for step := range 20 {
			_, err := app.Append(0, ls, t0.Add(time.Duration(step)*dataInterval).UnixMilli(), v)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := querier.NewEngine(querier.Config{LookbackDelta: 5 * time.Minute, MaxSamples: 50_000_000}, nil, logger)
	reg := prometheus.NewRegistry()
	api := v1.NewAPI(engine, shardedQueryable{st}, nil, nil, nil, nil, nil,
		func() config.Config { return config.DefaultConfig }, nil,
		v1.GlobalURLOptions{Scheme: "http"}, func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0, logger, nil, 5e7, 10, 1048576, false, nil, nil, &v1.PrometheusVersion{},
		nil, nil, reg, reg, nil, false, nil, false, false, false,
		5*time.Minute, false, false, nil, nil, v1.OpenAPIOptions{}, parser.NewParser(parser.Options{}), false, 2*time.Minute)
	r := route.New().WithPrefix(querier.PathPrefix)
	api.Register(r)
	down := &downstream{handler: r}
	cfg := testConfig()
	cfg.QueryShards = 2
	f := newTestFrontend(t, cfg, down, defaultLimits(), t0.Add(5*time.Hour))
	params := url.Values{"query": {`avg(big)`}, "time": {"1767225660"}} // t0 + 1m
	_, want := do(t, roundTripHandler{down}, "team-a", "/query", params)
	_, got := do(t, f, "team-a", "/query", params)
	require.Empty(t, diffResponses(want, got), "want %s\ngot  %s", want, got)
}
