package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// bundle is a set of Kubernetes objects, each decoded into its API type.
type bundle struct {
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	statefulSets    []*appsv1.StatefulSet
	deployments     []*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	roles           []*rbacv1.Role
	roleBindings    []*rbacv1.RoleBinding
	serviceMonitors []*monitoringv1.ServiceMonitor
	prometheuses    []*monitoringv1.Prometheus
	prometheusRules []*monitoringv1.PrometheusRule
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// add decodes every YAML document of data (named name in errors) strictly:
// a kind this package does not know, or a field its type lacks, is an
// error, as it would be for the API server.
func (b *bundle) add(name string, data []byte) error {
	for i, doc := range docSeparator.Split(string(data), -1) {
		var v interface{}
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			return fmt.Errorf("%s, document %d: %w", name, i, err)
		}
		if v == nil {
			continue // only comments, or nothing a template rendered
		}
		if err := b.decode([]byte(doc)); err != nil {
			return fmt.Errorf("%s, document %d: %w", name, i, err)
		}
	}
	return nil
}

func (b *bundle) decode(doc []byte) error {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	switch meta.APIVersion + " " + meta.Kind {
	case "v1 Secret":
		return decodeInto(doc, &b.secrets)
	case "v1 ConfigMap":
		return decodeInto(doc, &b.configMaps)
	case "v1 Service":
		return decodeInto(doc, &b.services)
	case "apps/v1 StatefulSet":
		return decodeInto(doc, &b.statefulSets)
	case "apps/v1 Deployment":
		return decodeInto(doc, &b.deployments)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(doc, &b.pdbs)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return decodeInto(doc, &b.hpas)
	case "rbac.authorization.k8s.io/v1 Role":
		return decodeInto(doc, &b.roles)
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return decodeInto(doc, &b.roleBindings)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return decodeInto(doc, &b.serviceMonitors)
	case "monitoring.coreos.com/v1 Prometheus":
		return decodeInto(doc, &b.prometheuses)
	case "monitoring.coreos.com/v1 PrometheusRule":
		return decodeInto(doc, &b.prometheusRules)
	}
	return fmt.Errorf("unknown kind %q of apiVersion %q", meta.Kind, meta.APIVersion)
}

// decodeInto decodes doc into a new T, refusing unknown and duplicate
// fields, and appends it to list.
func decodeInto[T any](doc []byte, list *[]*T) error {
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// loadFiles decodes the YAML files matched by the patterns into a bundle.
func loadFiles(t *testing.T, patterns ...string) *bundle {
	t.Helper()
	b := &bundle{}
	n := 0
	for _, p := range patterns {
		files, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.add(f, data); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no file matches %q", patterns)
	}
	return b
}

// ruleList is what kubectl get prometheusrules -o yaml prints.
type ruleList struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ListMeta               `json:"metadata"`
	Items           []monitoringv1.PrometheusRule `json:"items"`
}

// decodeRuleFile decodes a rule file the ruler reads: a Prometheus rule
// file (groups:), a PrometheusRule manifest, or a kind: List of them. It
// returns the groups, decoded strictly into the Prometheus Operator's
// types, whose fields are Prometheus's.
func decodeRuleFile(data []byte) ([]monitoringv1.RuleGroup, error) {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return nil, err
	}
	var groups []monitoringv1.RuleGroup
	switch meta.APIVersion + " " + meta.Kind {
	case " ":
		var spec monitoringv1.PrometheusRuleSpec
		if err := yaml.UnmarshalStrict(data, &spec); err != nil {
			return nil, err
		}
		groups = spec.Groups
	case "monitoring.coreos.com/v1 PrometheusRule":
		var rule monitoringv1.PrometheusRule
		if err := yaml.UnmarshalStrict(data, &rule); err != nil {
			return nil, err
		}
		groups = rule.Spec.Groups
	case "v1 List":
		var list ruleList
		if err := yaml.UnmarshalStrict(data, &list); err != nil {
			return nil, err
		}
		for _, item := range list.Items {
			if item.APIVersion != "monitoring.coreos.com/v1" || item.Kind != "PrometheusRule" {
				return nil, fmt.Errorf("list item %q is a %s %s, not a PrometheusRule", item.Name, item.APIVersion, item.Kind)
			}
			groups = append(groups, item.Spec.Groups...)
		}
	default:
		return nil, fmt.Errorf("a rule file is not a %s %s", meta.APIVersion, meta.Kind)
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("no rule groups")
	}
	for _, g := range groups {
		if g.Name == "" || len(g.Rules) == 0 {
			return nil, fmt.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if (r.Record == "") == (r.Alert == "") || strings.TrimSpace(r.Expr.String()) == "" {
				return nil, fmt.Errorf("group %q: a rule needs an expression and either record or alert", g.Name)
			}
		}
	}
	return groups, nil
}

// The decoder is what makes "decoded strictly" true: it must refuse what
// the API server would.
func TestDecodeRefusesUnknownKindsAndFields(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {selektor: {a: b}}\n",
		"unknown nested field": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{name: a, argz: []}]}}}\n",
		"unknown kind":         "apiVersion: v1\nkind: Sekret\nmetadata: {name: a}\n",
		"unknown version":      "apiVersion: autoscaling/v1beta9\nkind: HorizontalPodAutoscaler\nmetadata: {name: a}\n",
		"no kind":              "metadata: {name: a}\n",
		"duplicate field":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nmetadata: {name: b}\n",
		"operator field":       "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: a}\nspec: {endpoints: [{port: http, pathh: /metrics}]}\n",
	} {
		if err := (&bundle{}).add(name, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	for name, doc := range map[string]string{
		"unknown rule field": "groups: [{name: a, rules: [{record: r, expr: up, fro: 5m}]}]\n",
		"no groups":          "groups: []\n",
		"list of services":   "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Service, metadata: {name: a}}]\n",
	} {
		if _, err := decodeRuleFile([]byte(doc)); err == nil {
			t.Errorf("%s: decoded as a rule file", name)
		}
	}
}
