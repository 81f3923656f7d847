package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// reader queries the Prometheus API of one or more queriers, taking the
// next one after a failure, as a load balancer in front of them would.
type reader struct {
	apis    []v1.API
	timeout time.Duration
	next    atomic.Uint64
}

// tenantHeader sets X-Scope-OrgID on every request.
type tenantHeader struct {
	tenant string
	next   http.RoundTripper
}

func (t tenantHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Scope-OrgID", t.tenant)
	return t.next.RoundTrip(r)
}

// newReader returns a reader of the APIs under bases (each the prefix of
// /api/v1, e.g. http://querier:9009/prometheus).
func newReader(bases []string, tenant string, timeout time.Duration) (*reader, error) {
	transport := http.RoundTripper(&http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second})
	if tenant != "" {
		transport = tenantHeader{tenant: tenant, next: transport}
	}
	r := &reader{timeout: timeout}
	for _, base := range bases {
		c, err := api.NewClient(api.Config{Address: base, RoundTripper: transport})
		if err != nil {
			return nil, fmt.Errorf("read url %q: %w", base, err)
		}
		r.apis = append(r.apis, v1.NewAPI(c))
	}
	return r, nil
}

func (r *reader) api() v1.API { return r.apis[r.next.Load()%uint64(len(r.apis))] }

func (r *reader) failed() { r.next.Add(1) }

// answer is one query's result.
type answer struct {
	matrix   model.Matrix
	warnings v1.Warnings
}

// raw returns every sample of the workload at steps [lo, hi].
func (r *reader) raw(ctx context.Context, w *workload, lo, hi int) (answer, error) {
	q := fmt.Sprintf("%s[%dms]", w.selector, int64(hi-lo+1)*w.stepMs)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	val, warnings, _, err := r.api().Query(ctx, q, time.UnixMilli(w.ts(hi)))
	return r.matrix(q, val, warnings, err)
}

// steps returns the workload's value at every step in [lo, hi].
func (r *reader) steps(ctx context.Context, w *workload, lo, hi int) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rng := v1.Range{Start: time.UnixMilli(w.ts(lo)), End: time.UnixMilli(w.ts(hi)), Step: time.Duration(w.stepMs) * time.Millisecond}
	val, warnings, _, err := r.api().QueryRange(ctx, w.selector, rng)
	return r.matrix("query_range "+w.selector, val, warnings, err)
}

func (r *reader) matrix(q string, val model.Value, warnings v1.Warnings, err error) (answer, error) {
	if err != nil {
		r.failed()
		return answer{}, fmt.Errorf("query %s: %w", q, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		r.failed()
		return answer{}, fmt.Errorf("query %s: got a %T, want a matrix", q, val)
	}
	if len(warnings) > 0 {
		// Another querier may have the whole answer.
		r.failed()
	}
	return answer{matrix: m, warnings: warnings}, nil
}
