package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/tenant"
)

// generationRefresh is how long a tenant's deletion generation is trusted
// before it is asked again: a deletion made through another frontend
// reaches this one's cached answers within it. The frontend that forwarded
// a deletion asks again at its next query.
const generationRefresh = 5 * time.Second

// generations knows each tenant's deletion generation (querier.
// DeletionGeneration), which the results cache keys are made of: once a
// deletion completes, answers cached before it are never served again.
// It never goes down while it is kept: an ingester that joined after a
// deletion may know an older generation (until handover brings it the
// newer one), and the cache must not take it back.
type generations struct {
	down http.RoundTripper
	now  func() time.Time

	mu sync.Mutex
	m  map[string]*generation
}

type generation struct {
	// fetch makes one query at a time ask the queriers; the others wait
	// for its answer.
	fetch sync.Mutex
	gen   int64
	at    time.Time // when gen was asked; zero: ask at the next use
}

// maxGenerationTenants bounds the tenants whose generation is kept: any
// name may come without -auth.enabled. Past it they are all forgotten,
// and asked again at their next query.
const maxGenerationTenants = 10_000

func (g *generations) entry(id string) *generation {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil || (len(g.m) >= maxGenerationTenants && g.m[id] == nil) {
		g.m = map[string]*generation{}
	}
	e := g.m[id]
	if e == nil {
		e = &generation{}
		g.m[id] = e
	}
	return e
}

// key returns the tenants' generations as part of a cache key.
func (g *generations) key(ctx context.Context, ids []string) (string, error) {
	parts := make([]string, len(ids))
	for k, id := range ids {
		gen, err := g.get(ctx, id)
		if err != nil {
			return "", err
		}
		parts[k] = strconv.FormatInt(gen, 10)
	}
	return strings.Join(parts, ","), nil
}

func (g *generations) get(ctx context.Context, id string) (int64, error) {
	e := g.entry(id)
	e.fetch.Lock()
	defer e.fetch.Unlock()
	if !e.at.IsZero() && g.now().Sub(e.at) < generationRefresh {
		return e.gen, nil
	}
	asked := g.now()
	gen, err := g.ask(ctx, id)
	if err != nil {
		return 0, err
	}
	e.gen, e.at = max(e.gen, gen), asked
	return e.gen, nil
}

// expire makes the next use ask again: a deletion was just made.
func (g *generations) expire(id string) {
	e := g.entry(id)
	e.fetch.Lock()
	e.at = time.Time{}
	e.fetch.Unlock()
}

func (g *generations) ask(ctx context.Context, id string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, querier.PathPrefix+querier.DeletionGenerationPath, nil)
	if err != nil {
		return 0, fmt.Errorf("frontend: deletion generation: %w", err)
	}
	req.Header.Set(tenant.HeaderName, id)
	resp, err := g.down.RoundTrip(req)
	if err != nil {
		return 0, fmt.Errorf("frontend: deletion generation: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, fmt.Errorf("frontend: deletion generation: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("frontend: deletion generation: querier answered %d: %s", resp.StatusCode, body)
	}
	var out struct {
		Data struct {
			Generation string `json:"generation"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("frontend: deletion generation: %w", err)
	}
	gen, err := strconv.ParseInt(out.Data.Generation, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("frontend: deletion generation: %w", err)
	}
	return gen, nil
}

// ServeDeleteSeries forwards a deletion, which the caller authorized with
// the admin credential, to a querier, and once it succeeded makes the
// tenant's next query ask for its new deletion generation.
func (f *Frontend) ServeDeleteSeries(w http.ResponseWriter, r *http.Request) {
	ids, err := tenant.IDsFromContext(r.Context())
	if err != nil || len(ids) != 1 {
		writeError(w, http.StatusBadRequest, "bad_data", "delete_series: name exactly one tenant in "+tenant.HeaderName)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("error parsing form values: %v", err))
		return
	}
	req, err := newFormRequest(r.Context(), querier.DeleteSeriesPath, r.Form, r.Header)
	if err != nil {
		f.writeErr(w, err)
		return
	}
	req.Method = r.Method
	setHeaders(req.Header, ids)
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	f.forward(rec, req)
	if rec.code/100 == 2 {
		f.gens.expire(ids[0])
	}
}
