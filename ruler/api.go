package ruler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
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

// Peers are the rulers to ask for their share of a tenant's groups.
type Peers interface {
	// HealthyHTTPAddrs returns the HTTP addresses of the healthy
	// instances running component, by id.
	HealthyHTTPAddrs(component string) map[string]string
}

// localHeader asks a ruler for its own groups only: what one ruler asks
// the others when it answers a client.
const localHeader = "X-Orrery-Rules-Local"

// API returns Prometheus's own /rules and /alerts handlers under prefix,
// answering for the tenant of each request, in exactly Prometheus's
// response shape. Each ruler evaluates a share of the groups, so the
// ruler a client asks answers with its own groups and those of every
// other healthy ruler (peers), asked in parallel with the client's tenant
// and credential; a ruler that does not answer is named in the answer's
// warnings, and its groups are missing.
func (r *Ruler) API(prefix string, peers Peers, logger *slog.Logger) http.Handler {
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
	client := &http.Client{Timeout: 10 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := strings.TrimPrefix(req.URL.Path, prefix)
		if !slices.Contains(APIPaths, path) {
			http.NotFound(w, req)
			return
		}
		if req.Header.Get(localHeader) != "" || peers == nil {
			rt.ServeHTTP(w, req)
			return
		}
		own := &bufferedResponse{header: http.Header{}}
		// Uncompressed, to be merged; the client gets the merge plain.
		plain := req.Clone(req.Context())
		plain.Header.Del("Accept-Encoding")
		rt.ServeHTTP(own, plain)
		addrs := peers.HealthyHTTPAddrs(Component)
		delete(addrs, r.self)
		if own.code != http.StatusOK || len(addrs) == 0 {
			own.writeTo(w)
			return
		}
		answers, warnings := r.askPeers(req, client, addrs, logger)
		merged, err := mergeAnswers(append([][]byte{own.body.Bytes()}, answers...), warnings)
		if err != nil {
			logger.Error("merging rulers' answers", "err", err)
			http.Error(w, "merging the rulers' answers: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(merged)
	})
}

// askPeers asks every other ruler for its own groups, in parallel, with
// the request's tenant and credential.
func (r *Ruler) askPeers(req *http.Request, client *http.Client, addrs map[string]string, logger *slog.Logger) ([][]byte, []string) {
	type answer struct {
		id   string
		body []byte
		err  error
	}
	out := make(chan answer, len(addrs))
	for id, addr := range addrs {
		go func() {
			body, err := askPeer(req, client, addr)
			out <- answer{id, body, err}
		}()
	}
	var bodies [][]byte
	var warnings []string
	for range addrs {
		a := <-out
		if a.err != nil {
			logger.Warn("a ruler did not list its rules", "ruler", a.id, "err", a.err)
			warnings = append(warnings, fmt.Sprintf("ruler %s did not answer, its rule groups are missing: %s", a.id, a.err))
			continue
		}
		bodies = append(bodies, a.body)
	}
	slices.Sort(warnings)
	return bodies, warnings
}

// maxPeerAnswerBytes bounds what one ruler's answer may take.
const maxPeerAnswerBytes = 64 << 20

func askPeer(req *http.Request, client *http.Client, addr string) ([]byte, error) {
	u := url.URL{Scheme: "http", Host: addr, Path: req.URL.Path, RawQuery: req.URL.RawQuery}
	out, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for _, h := range []string{tenant.HeaderName, "Authorization"} {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if id, err := tenant.FromContext(req.Context()); err == nil {
		out.Header.Set(tenant.HeaderName, id)
	}
	out.Header.Set(localHeader, "1")
	resp, err := client.Do(out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerAnswerBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxPeerAnswerBytes {
		return nil, fmt.Errorf("answer over %d bytes", maxPeerAnswerBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 256)]))
	}
	return body, nil
}

// mergeAnswers joins rulers' /rules or /alerts answers: their groups,
// sorted by file and name as one rule manager lists them, or their
// alerts, with warnings for the rulers that did not answer.
func mergeAnswers(answers [][]byte, warnings []string) ([]byte, error) {
	var merged map[string]any
	for k, b := range answers {
		var a map[string]any
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("answer %d: %w", k, err)
		}
		if merged == nil {
			merged = a
			continue
		}
		into, _ := merged["data"].(map[string]any)
		from, _ := a["data"].(map[string]any)
		if into == nil || from == nil {
			return nil, fmt.Errorf("answer %d has no data", k)
		}
		for _, key := range []string{"groups", "alerts"} {
			if more, ok := from[key].([]any); ok {
				have, _ := into[key].([]any)
				into[key] = append(have, more...)
			}
		}
	}
	if data, ok := merged["data"].(map[string]any); ok {
		if groups, ok := data["groups"].([]any); ok {
			slices.SortStableFunc(groups, func(a, b any) int {
				ga, _ := a.(map[string]any)
				gb, _ := b.(map[string]any)
				if c := strings.Compare(fmt.Sprint(ga["file"]), fmt.Sprint(gb["file"])); c != 0 {
					return c
				}
				return strings.Compare(fmt.Sprint(ga["name"]), fmt.Sprint(gb["name"]))
			})
		}
	}
	if len(warnings) > 0 {
		merged["warnings"] = warnings
	}
	return json.Marshal(merged)
}

// bufferedResponse keeps a handler's answer for merging.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) { b.code = code }

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.code == 0 {
		b.code = http.StatusOK
	}
	w.WriteHeader(b.code)
	_, _ = w.Write(b.body.Bytes())
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }
