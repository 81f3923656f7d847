package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// prometheusRuleGroups turns a rule file that holds Prometheus Operator
// PrometheusRule objects (one, several as YAML documents, or a `kind: List`
// as `kubectl get prometheusrules -o yaml` prints them) into a plain rule
// file of all their groups, so kube-prometheus users can put the rules they
// already have in a tenant's ConfigMap unchanged. ok is false for anything
// else, which is then parsed as a Prometheus rule file.
//
// The groups are re-encoded, so errors in them lose their line numbers;
// they keep the group's and the rule's name.
func prometheusRuleGroups(content []byte) (out []byte, ok bool, err error) {
	type object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec struct {
			Groups []yaml.Node `yaml:"groups"`
		} `yaml:"spec"`
		Items []yaml.Node `yaml:"items"`
	}
	var groups []yaml.Node
	var add func(n *yaml.Node) error
	add = func(n *yaml.Node) error {
		var o object
		if err := n.Decode(&o); err != nil {
			return err
		}
		switch o.Kind {
		case "PrometheusRule":
			groups = append(groups, o.Spec.Groups...)
		case "List", "PrometheusRuleList":
			for i := range o.Items {
				if err := add(&o.Items[i]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("line %d: kind %q: a rule file holds rule groups or PrometheusRule objects", n.Line, o.Kind)
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for first := true; ; first = false {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			if first {
				// Not YAML at all: rulefmt names the problem.
				return nil, false, nil
			}
			return nil, true, err
		}
		if first {
			var probe struct {
				Kind string `yaml:"kind"`
			}
			if doc.Decode(&probe) != nil || probe.Kind == "" {
				return nil, false, nil
			}
		}
		if len(doc.Content) == 0 {
			continue
		}
		if err := add(doc.Content[0]); err != nil {
			return nil, true, err
		}
	}
	out, err = yaml.Marshal(map[string][]yaml.Node{"groups": groups})
	return out, true, err
}
