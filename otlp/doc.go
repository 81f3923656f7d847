// Package otlp owns OTLP metrics ingest: POST /otlp/v1/metrics (and
// Prometheus's /api/v1/otlp/v1/metrics) in protobuf or JSON, plain or
// gzip, bounded in size before and after decompression; translation into
// Prometheus series by Prometheus's own translator (otlptranslator, with
// the tenant's `otlp` settings of the overrides file, Prometheus's
// defaults otherwise); and the OTLP response, with partial success for
// the points it could not take.
//
// It writes only through the distributor's Push, so OTLP samples get
// remote write's validation, limits, HA de-duplication and replication.
// It must never store anything itself, or keep state across requests.
package otlp
