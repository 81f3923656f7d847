package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/internal/promtime"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/proto/ringpb"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/tenant"
)

// Paths of the deletion API under PathPrefix: Prometheus's, and the
// generation that query frontends key their results caches by.
const (
	DeleteSeriesPath       = "/admin/tsdb/delete_series"
	DeletionGenerationPath = "/status/deletion_generation"
)

// Bounds of one deletion request.
const (
	maxDeleteSelectors     = 100
	maxDeleteSelectorBytes = 4096
)

// DeleteTenantPath deletes all of a tenant's series, at the root as in
// Mimir.
const DeleteTenantPath = "/purger/delete_tenant"

// allSeries selects every series: each has a metric name (the distributor
// refuses one without).
const allSeries = `{__name__=~".+"}`

// DeleteTenant serves DeleteTenantPath through deleteSeries, the handler
// of PathPrefix+DeleteSeriesPath: a deletion of every series of the tenant
// named in the request, over all time. Its caller has checked the admin
// credential.
func DeleteTenant(deleteSeries http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form := url.Values{"match[]": {allSeries}}.Encode()
		req := r.Clone(r.Context())
		req.Method = http.MethodPost
		req.URL = &url.URL{Path: PathPrefix + DeleteSeriesPath}
		req.RequestURI = req.URL.Path
		req.Body = io.NopCloser(strings.NewReader(form))
		req.ContentLength = int64(len(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Form, req.PostForm = nil, nil
		deleteSeries.ServeHTTP(w, req)
	})
}

// DeleteSeries hides the tenant's samples in [mint, maxt] of the series
// each matcher set selects, on every ingester that may hold them, and then
// raises the tenant's deletion generation on all of them. It refuses while
// the ring changes or an ingester is unhealthy: the deletion must reach
// every copy. A failure may leave the deletion applied on some ingesters;
// repeating it is harmless.
func (q *Queryable) DeleteSeries(ctx context.Context, tenantID string, mint, maxt int64, sets [][]*labels.Matcher) error {
	instances, err := q.ring.ForDeletion()
	if err != nil {
		if errors.Is(err, ring.ErrChanging) || errors.Is(err, ring.ErrEmptyRing) {
			return apierr.New(apierr.Unavailable, "delete series: %s; retry when every ingester is ACTIVE and healthy", err)
		}
		return fmt.Errorf("delete series: %w", err)
	}
	ctx = tenant.WithID(ctx, tenantID)
	now := time.Now()
	reqs := make([]*ingesterpb.DeleteSeriesRequest, len(sets))
	for k, ms := range sets {
		reqs[k] = &ingesterpb.DeleteSeriesRequest{Matchers: ingesterpb.FromMatchers(ms), StartMs: mint, EndMs: maxt, NowMs: now.UnixMilli()}
	}
	err = onEvery(ctx, q.clients, instances, func(ctx context.Context, c ingesterpb.IngesterClient) error {
		for _, req := range reqs {
			if _, err := c.DeleteSeries(ctx, req); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete series: %w", err)
	}
	// An ingester that started leaving, or joined, since the ring was
	// read may hold or receive the samples without the tombstone.
	if again, err := q.ring.ForDeletion(); err != nil || !sameInstances(instances, again) {
		return apierr.New(apierr.Unavailable, "delete series: the ring changed while deleting; repeat the deletion when every ingester is ACTIVE and healthy")
	}
	// Only now, with the tombstone on every ingester, may a cache see the
	// new generation: an answer computed under it lacks the samples.
	raise := &ingesterpb.DeletionGenerationRequest{RaiseTo: time.Now().UnixNano()}
	err = onEvery(ctx, q.clients, instances, func(ctx context.Context, c ingesterpb.IngesterClient) error {
		_, err := c.DeletionGeneration(ctx, raise)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete series: raise the deletion generation: %w", err)
	}
	q.logger.Info("series deleted", "tenant", tenantID, "sets", len(sets), "min_time", mint, "max_time", maxt, "ingesters", len(instances))
	return nil
}

func sameInstances(a, b []*ringpb.Instance) bool {
	ids := func(is []*ringpb.Instance) []string {
		out := make([]string, len(is))
		for k, in := range is {
			out[k] = in.GetId() + "@" + in.GetAddr()
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

// onEvery calls call on every instance in parallel; any failure fails it,
// naming the instance.
func onEvery(ctx context.Context, clients Clients, instances []*ringpb.Instance, call func(context.Context, ingesterpb.IngesterClient) error) error {
	errs := make([]error, len(instances))
	var wg sync.WaitGroup
	for k, in := range instances {
		wg.Go(func() {
			c, err := clients.Client(in.GetAddr())
			if err == nil {
				err = call(ctx, c)
			}
			if err != nil {
				errs[k] = fmt.Errorf("ingester %s: %w", in.GetId(), apierr.FromGRPC(err))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DeletionGeneration returns the tenant's deletion generation: the highest
// any ingester that answered holds (each holds it once a deletion reached
// them all).
func (q *Queryable) DeletionGeneration(ctx context.Context, tenantID string) (int64, error) {
	gens, _, err := fanout(ctx, q, tenantID, func(ctx context.Context, c ingesterpb.IngesterClient) (int64, error) {
		resp, err := c.DeletionGeneration(ctx, &ingesterpb.DeletionGenerationRequest{})
		return resp.GetGeneration(), err
	})
	if err != nil {
		return 0, err
	}
	var gen int64
	for _, g := range gens {
		gen = max(gen, g)
	}
	return gen, nil
}

// serveDeleteSeries answers Prometheus's delete_series: match[] (at least
// one), start and end (default: all time), 204 when done. Its caller has
// checked the admin credential and named one tenant.
func (a *API) serveDeleteSeries(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		writeError(w, http.StatusMethodNotAllowed, "bad_data", "delete_series takes POST or PUT")
		return
	}
	ids, err := tenant.IDsFromContext(r.Context())
	if err != nil || len(ids) != 1 {
		writeError(w, http.StatusBadRequest, "bad_data", "delete_series: name exactly one tenant in "+tenant.HeaderName)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("error parsing form values: %v", err))
		return
	}
	if len(r.Form["match[]"]) == 0 {
		writeError(w, http.StatusBadRequest, "bad_data", "no match[] parameter provided")
		return
	}
	// Every ingester stores, keeps and checks each tombstone against every
	// series it returns, and hands them all over in one message.
	if n := len(r.Form["match[]"]); n > maxDeleteSelectors {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("delete_series takes at most %d match[] selectors, got %d", maxDeleteSelectors, n))
		return
	}
	for _, s := range r.Form["match[]"] {
		if len(s) > maxDeleteSelectorBytes {
			writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("a match[] selector of delete_series is at most %d bytes, got %d", maxDeleteSelectorBytes, len(s)))
			return
		}
	}
	times := [2]time.Time{v1.MinTime, v1.MaxTime}
	for k, name := range []string{"start", "end"} {
		if s := r.FormValue(name); s != "" {
			t, err := promtime.Parse(s)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid parameter %q: %v", name, err))
				return
			}
			times[k] = t
		}
	}
	var sets [][]*labels.Matcher
	for _, s := range r.Form["match[]"] {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid parameter \"match[]\": %v", err))
			return
		}
		sets = append(sets, ms)
	}
	if err := a.q.DeleteSeries(r.Context(), ids[0], times[0].UnixMilli(), times[1].UnixMilli(), sets); err != nil {
		code := apierr.HTTPStatus(err)
		if code == http.StatusInternalServerError {
			a.logger.Error("delete series failed", "tenant", ids[0], "err", err)
		}
		writeError(w, code, apierr.PrometheusType(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveDeletionGeneration answers the tenant's deletion generation, as a
// decimal string (JSON numbers lose int64 precision).
func (a *API) serveDeletionGeneration(w http.ResponseWriter, r *http.Request) {
	ids, err := tenant.IDsFromContext(r.Context())
	if err != nil || len(ids) != 1 {
		writeError(w, http.StatusBadRequest, "bad_data", "deletion_generation: name exactly one tenant in "+tenant.HeaderName)
		return
	}
	gen, err := a.q.DeletionGeneration(r.Context(), ids[0])
	if err != nil {
		writeError(w, apierr.HTTPStatus(err), apierr.PrometheusType(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		Data   struct {
			Generation string `json:"generation"`
		} `json:"data"`
	}{Status: "success", Data: struct {
		Generation string `json:"generation"`
	}{strconv.FormatInt(gen, 10)}})
}
