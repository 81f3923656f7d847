// Package ruler evaluates each tenant's recording and alerting rules with
// Prometheus's own rule engine (github.com/prometheus/prometheus/rules)
// over the querier, writes recording rules' results and alerts' series
// back through the distributor, and sends alerts to Alertmanager with
// Prometheus's notifier.
//
// It owns:
//   - reading each tenant's rule files (one directory per tenant),
//     reloading them on change and keeping a file's last good version
//     while a newer one is invalid (loader.go),
//   - which ruler evaluates which rule group: every group is hashed with
//     each healthy ruler's id and the highest wins, so each group has one
//     evaluator and a ruler joining or leaving moves only its own share
//     (owner.go),
//   - one rule manager and one notifier per tenant, and the tenant in
//     every query, write and notification they make.
//
// It must never:
//   - evaluate PromQL or rules itself: the upstream engine and rule
//     manager do, so answers and alert semantics are Prometheus's;
//   - write to ingesters directly: every sample goes through the
//     distributor's Push, with remote write's validation and limits;
//   - evaluate a group it does not own in a settled ring.
package ruler
