package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// prometheusRuleGroups turns a rule file that holds Prometheus Operator
// PrometheusRule objects (one, several as YAML documents, or a `kind: List`
// as `kubectl get prometheusrules -o yaml` prints them) into a plain rule
// file of all their groups, so kube-prometheus users can put the rules they
// already have in a tenant's ConfigMap unchanged. ok is false for anything
// else, which is then parsed as a Prometheus rule file.
//
// The Operator gives each object its own rule file, so two objects may
// have groups of the same name; in a file of several objects each group is
// named "<namespace>/<name>/<group>" after its object, so none collide.
// The groups are re-encoded, so errors in them lose their line numbers;
// they keep the group's and the rule's name.
func prometheusRuleGroups(content []byte) (out []byte, ok bool, err error) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			if len(docs) == 0 {
				// Not YAML at all: rulefmt names the problem.
				return nil, false, nil
			}
			return nil, true, err
		}
		// Empty documents ("---" with only comments between, as helm
		// template prints them) hold nothing.
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		docs = append(docs, doc.Content[0])
	}
	if len(docs) == 0 {
		return nil, false, nil
	}
	var probe struct {
		Kind string `yaml:"kind"`
	}
	if docs[0].Decode(&probe) != nil || probe.Kind == "" {
		return nil, false, nil
	}
	var objects []promRule
	for _, d := range docs {
		if err := collect(d, &objects); err != nil {
			return nil, true, err
		}
	}
	var groups []any
	for _, o := range objects {
		for _, g := range o.Spec.Groups {
			if len(objects) > 1 {
				if m, isMap := g.(map[string]any); isMap {
					m["name"] = fmt.Sprintf("%s/%s/%v", o.Metadata.Namespace, o.Metadata.Name, m["name"])
				}
			}
			groups = append(groups, g)
		}
	}
	out, err = yaml.Marshal(map[string][]any{"groups": groups})
	return out, true, err
}

// promRule is what a PrometheusRule object holds that matters here. The
// groups are decoded generically, which resolves YAML aliases whose
// anchors are elsewhere in the object.
type promRule struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Groups []any `yaml:"groups"`
	} `yaml:"spec"`
	Items []yaml.Node `yaml:"items"`
}

// collect appends the PrometheusRule objects of n, itself one or a list.
func collect(n *yaml.Node, into *[]promRule) error {
	var o promRule
	if err := n.Decode(&o); err != nil {
		return err
	}
	switch {
	case o.Kind == "PrometheusRule" && strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/"):
		*into = append(*into, o)
	case o.Kind == "List" || o.Kind == "PrometheusRuleList":
		for i := range o.Items {
			if err := collect(&o.Items[i], into); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("line %d: %s %q: a rule file holds rule groups or monitoring.coreos.com PrometheusRule objects", n.Line, o.APIVersion, o.Kind)
	}
	return nil
}
