package querier

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/proto/ingesterpb"
	"github.com/orrery/orrery/tenant"
)

// Metadata returns the metric metadata the ingesters received recently,
// for one metric family or, with metric empty, for all; for a cross-tenant
// read, every tenant's.
func (q *Queryable) Metadata(ctx context.Context, metric string) ([]*ingesterpb.MetricMetadata, error) {
	ids, err := tenant.IDsFromContext(ctx)
	if err != nil {
		return nil, apierr.New(apierr.Unauthorized, "%s", err)
	}
	perTenant, err := eachTenant(ids, func(id string) ([]*ingesterpb.MetricMetadata, error) {
		// Metadata is a hint, not data: an answer that may miss some is
		// served without a warning, which the metadata API cannot carry.
		perIngester, _, err := fanout(ctx, q, id, func(ctx context.Context, c ingesterpb.IngesterClient) ([]*ingesterpb.MetricMetadata, error) {
			resp, err := c.MetricsMetadata(ctx, &ingesterpb.MetricsMetadataRequest{Metric: metric})
			return resp.GetMetadata(), err
		})
		return slices.Concat(perIngester...), err
	})
	return slices.Concat(perTenant...), err
}

// serveMetadata answers /api/v1/metadata as Prometheus does: limit bounds
// the number of metrics, limit_per_metric the entries per metric.
func (a *API) serveMetadata(w http.ResponseWriter, r *http.Request) {
	limit, err := formInt(r, "limit")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", "limit must be a number")
		return
	}
	limitPerMetric, err := formInt(r, "limit_per_metric")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", "limit_per_metric must be a number")
		return
	}
	mds, err := a.q.Metadata(r.Context(), r.FormValue("metric"))
	if err != nil {
		writeError(w, httpStatus(err), "internal", err.Error())
		return
	}
	res := map[string][]metadata.Metadata{}
	type entry struct{ name, typ, help, unit string }
	seen := map[entry]bool{}
	for _, md := range mds {
		key := entry{md.MetricFamilyName, md.Type, md.Help, md.Unit}
		if seen[key] {
			continue
		}
		seen[key] = true
		list, known := res[md.MetricFamilyName]
		if !known && limit >= 0 && len(res) >= limit {
			continue
		}
		if limitPerMetric > 0 && len(list) >= limitPerMetric {
			continue
		}
		res[md.MetricFamilyName] = append(list, metadata.Metadata{Type: model.MetricType(md.Type), Help: md.Help, Unit: md.Unit})
	}
	writeJSON(w, http.StatusOK, struct {
		Status string                         `json:"status"`
		Data   map[string][]metadata.Metadata `json:"data"`
	}{"success", res})
}

// formInt reads an optional integer parameter; absent is -1.
func formInt(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	return strconv.Atoi(s)
}

// writeError writes Prometheus's error envelope, fields in its order.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status":"error","errorType":"internal","error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
