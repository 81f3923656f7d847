// Package mixin owns Orrery's monitoring mixin: the Grafana dashboards in
// dashboards/ (plain JSON, imported as they are), the alerting rules for
// Orrery itself in alerts.yaml, whose runbooks are in docs/operations.md,
// and the code that reads them for the tests. The files are embedded so
// that the unit test here and the integration test (which evaluates every
// panel's query against a running Orrery) read exactly what ships.
package mixin
