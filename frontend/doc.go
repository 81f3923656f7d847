// Package frontend owns the query frontend's logic: in front of the
// queriers it splits range queries by interval, shards shardable
// aggregations into partial queries by series hash, caches the split
// parts' results, runs the parts in parallel and merges their answers into
// the one Prometheus would give.
//
// It reaches the queriers only through the http.RoundTripper it is given,
// one ordinary Prometheus API request per part, and must never read series
// data itself, queue or schedule requests (the transport's job), or answer
// differently from an unsplit, unsharded, uncached query beyond float
// rounding.
package frontend
