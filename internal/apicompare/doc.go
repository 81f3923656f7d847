// Package apicompare judges whether two Prometheus HTTP API query answers
// carry the same result, as Orrery's tests compare Orrery with Prometheus
// 3 (integration) and the query frontend with a direct query (frontend):
// same series, same timestamps, values within 1e-9 relative, NaN equal to
// NaN, native histograms equal in count, sum and every bucket (boundary
// rule, boundaries and count).
//
// It is for tests only and must never be linked into the orrery binary.
package apicompare
