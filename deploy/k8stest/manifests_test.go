package k8stest

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The plain manifests: every document of kubernetes/*.yaml decodes strictly
// and together they keep every promise checkBundle checks.
func TestManifests(t *testing.T) {
	b := loadFiles(t, "../kubernetes/*.yaml")
	checkBundle(t, b, want{hpas: true, ruleTenants: []string{"team-a"}})
}

// The Prometheus Operator's part: its documents decode strictly; the
// Prometheus writes to the distributors' Service with the tenant's
// credential; the ServiceMonitors scrape ports the plain manifests'
// Services expose; and the rules ConfigMap made from a PrometheusRule is
// the tenant's ConfigMap the ruler mounts, holding that PrometheusRule's
// groups as a file the ruler reads.
func TestPrometheusOperator(t *testing.T) {
	core := loadFiles(t, "../kubernetes/*.yaml")
	op := loadFiles(t, "../kubernetes/prometheus-operator/*.yaml")
	checkSecrets(t, op)
	checkRemoteWrite(t, op, core)
	checkServiceMonitors(t, op.serviceMonitors, core)
	if len(op.prometheusRules) != 1 || len(op.configMaps) != 1 {
		t.Fatalf("%d PrometheusRules and %d ConfigMaps, want one of each: the rule and the ConfigMap made from it", len(op.prometheusRules), len(op.configMaps))
	}
	cm := op.configMaps[0]
	if core.configMap(cm.Name) == nil {
		t.Errorf("ConfigMap %s is not the tenant's rules ConfigMap of the plain manifests", cm.Name)
	}
	mounted := false
	for _, d := range core.deployments {
		mounted = mounted || slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == cm.Name })
	}
	if !mounted {
		t.Errorf("no ruler mounts ConfigMap %s", cm.Name)
	}
	checkRuleConfigMap(t, cm)
	for file, content := range cm.Data {
		groups, err := decodeRuleFile([]byte(content))
		if err != nil {
			continue // checkRuleConfigMap says so
		}
		if want := op.prometheusRules[0].Spec.Groups; !reflect.DeepEqual(groups, want) {
			t.Errorf("%s, %s: groups %+v, want those of PrometheusRule %s: %+v", cm.Name, file, groups, op.prometheusRules[0].Name, want)
		}
	}
	if len(op.roles) != 1 || len(op.roleBindings) != 1 || op.roleBindings[0].RoleRef.Name != op.roles[0].Name {
		t.Errorf("want one Role for Prometheus's service discovery and its RoleBinding")
	}
	for _, p := range op.prometheuses {
		for _, rb := range op.roleBindings {
			if !slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Name == p.Spec.ServiceAccountName && s.Namespace == p.Namespace
			}) {
				t.Errorf("RoleBinding %s does not bind Prometheus %s's service account %s", rb.Name, p.Name, p.Spec.ServiceAccountName)
			}
		}
	}
}
