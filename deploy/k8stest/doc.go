// Package k8stest owns the tests of Orrery's Kubernetes deployment files:
// the plain manifests in ../kubernetes (with the Prometheus Operator's
// resources in ../kubernetes/prometheus-operator) and the Helm chart in
// ../helm/orrery. It holds no code, only tests: they decode every manifest
// and every document the chart renders strictly into the Kubernetes and
// Prometheus Operator API types, and check them against the flags,
// defaults and configuration checks of the orrery binary built from the
// product's module.
//
// It is a module of its own so that helm's and Kubernetes' dependencies stay
// out of the product's module. It sits in a directory of its own, not at
// deploy/, because deploy/mixin is a package of the product's module (the
// integration tests import it), which a go.mod at deploy/ would take away.
package k8stest
