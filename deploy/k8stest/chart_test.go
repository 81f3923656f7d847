package k8stest

import (
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

const chartDir = "../helm/orrery"

// render renders the chart as helm install would, for release in namespace
// orrery, with values (YAML) over the chart's own. Strict: a template that
// reads a value values.yaml lacks fails.
func render(t *testing.T, ch *chart.Chart, release, values string) (*bundle, error) {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals.AsMap(), chartutil.ReleaseOptions{Name: release, Namespace: "orrery", IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	b := &bundle{}
	for _, name := range names {
		if err := b.add(name, []byte(out[name])); err != nil {
			t.Fatal(err)
		}
	}
	return b, nil
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.APIVersion != chart.APIVersionV2 {
		t.Fatalf("Chart.yaml apiVersion %q, want %q", ch.Metadata.APIVersion, chart.APIVersionV2)
	}
	return ch
}

// Each value set renders documents that decode strictly and keep every
// promise checkBundle checks, with what the values ask for.
func TestChart(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name, release, values string
		want                  want
		check                 func(t *testing.T, b *bundle)
	}{
		{
			name:    "defaults",
			release: "orrery",
			want:    want{hpas: true},
			check: func(t *testing.T, b *bundle) {
				wantNames(t, "Secrets", b.secretNames(), "orrery-auth", "orrery-gossip-key", "orrery-grpc-tls")
				wantNames(t, "Services", b.serviceNames(), "orrery-distributor", "orrery-gossip", "orrery-ingester",
					"orrery-querier", "orrery-query-frontend", "orrery-ruler")
				wantGrace(t, b, 360)
			},
		},
		{
			name:    "zones and ServiceMonitors",
			release: "metrics",
			values: `
zones: [zone-a, zone-b, zone-c]
serviceMonitor: {enabled: true, labels: {release: kube-prometheus}}
`,
			want: want{hpas: true, zones: []string{"zone-a", "zone-b", "zone-c"}, serviceMonitors: true},
			check: func(t *testing.T, b *bundle) {
				for _, sm := range b.serviceMonitors {
					if sm.Labels["release"] != "kube-prometheus" || !strings.HasPrefix(sm.Name, "metrics-orrery-") {
						t.Errorf("ServiceMonitor %s: labels %v", sm.Name, sm.Labels)
					}
				}
				for _, ss := range b.statefulSets {
					if ss.Spec.ServiceName != "metrics-orrery-ingester" {
						t.Errorf("StatefulSet %s: serviceName %s", ss.Name, ss.Spec.ServiceName)
					}
				}
			},
		},
		{
			name:    "HPAs off and a longer shutdown",
			release: "orrery",
			values: `
distributor: {replicas: 3, autoscaling: {enabled: false}}
querier: {replicas: 4, autoscaling: {enabled: false}}
queryFrontend: {autoscaling: {enabled: false}}
ruler: {autoscaling: {enabled: false}}
ingester: {shutdownTimeoutSeconds: 900, lastFlushSeconds: 120, handoverOnShutdown: false}
`,
			want: want{},
			check: func(t *testing.T, b *bundle) {
				if len(b.hpas) != 0 {
					t.Errorf("%d HorizontalPodAutoscalers", len(b.hpas))
				}
				for _, d := range b.deployments {
					if d.Name == "orrery-querier" && *d.Spec.Replicas != 4 {
						t.Errorf("querier replicas %d, want 4", *d.Spec.Replicas)
					}
				}
				wantGrace(t, b, 1020)
				wantArg(t, b, "ingester", "-ingester.shutdown-timeout=900s")
				wantArg(t, b, "ingester", "-ingester.handover-on-shutdown=false")
			},
		},
		{
			name:    "a tenant's rules",
			release: "orrery",
			values: `
rules:
  tenants:
    team-a:
      alerts.yaml: |
        groups:
          - name: availability
            rules:
              - alert: TargetDown
                expr: up == 0
                for: 5m
  existingConfigMaps:
    team_b: orrery-rules-team-b
ruler: {alertmanagerURL: "http://alertmanager-main.monitoring.svc:9093"}
overrides: {team-a: {ingestion_rate: 50000}}
`,
			want: want{hpas: true, ruleTenants: []string{"team-a", "team_b"}},
			check: func(t *testing.T, b *bundle) {
				if b.configMap("orrery-rules-team-a") == nil {
					t.Error("no ConfigMap orrery-rules-team-a")
				}
				if b.configMap("orrery-rules-team-b") != nil {
					t.Error("the chart wrote the user's ConfigMap orrery-rules-team-b")
				}
				wantArg(t, b, "ruler", "-ruler.alertmanager-url=http://alertmanager-main.monitoring.svc:9093")
				if o := b.configMap("orrery-overrides"); o == nil || !strings.Contains(o.Data["overrides.yaml"], "ingestion_rate: 50000") {
					t.Errorf("overrides not rendered: %v", o)
				}
			},
		},
		{
			name:    "existing Secrets",
			release: "orrery",
			values: `
secrets:
  auth: {existingSecret: prod-auth}
  grpcTLS: {existingSecret: prod-tls}
  gossip: {existingSecret: prod-gossip}
`,
			want: want{hpas: true, externalSecrets: []string{"prod-auth", "prod-gossip", "prod-tls"}},
			check: func(t *testing.T, b *bundle) {
				wantNames(t, "Secrets", b.secretNames())
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := render(t, ch, tc.release, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			checkBundle(t, b, tc.want)
			tc.check(t, b)
		})
	}
}

// Values that cannot work fail the render with a reason instead of
// rendering something that would.
func TestChartRefuses(t *testing.T) {
	ch := loadChart(t)
	for name, tc := range map[string]struct{ values, reason string }{
		"fewer zones than replicas": {"zones: [zone-a, zone-b]", "at least replicationFactor zones"},
		"a zone Kubernetes refuses": {"zones: [Zone_A, b, c]", "zone \"Zone_A\""},
		"a tenant's rules twice": {
			"rules: {tenants: {team-a: {a.yaml: 'groups: []'}}, existingConfigMaps: {team-a: x}}", "keep one"},
		"a tenant name Kubernetes refuses": {"rules: {tenants: {Team_A: {a.yaml: 'groups: []'}}}", "\"Team_A\""},
	} {
		_, err := render(t, ch, "orrery", tc.values)
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.reason)
		}
	}
}

func (b *bundle) secretNames() []string {
	var names []string
	for _, s := range b.secrets {
		names = append(names, s.Name)
	}
	return names
}

func (b *bundle) serviceNames() []string {
	var names []string
	for _, s := range b.services {
		names = append(names, s.Name)
	}
	return names
}

func wantNames(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s %v, want %v", what, got, want)
	}
}

// wantGrace: the grace period is computed from the values, so it moves
// with the shutdown timeout.
func wantGrace(t *testing.T, b *bundle, seconds int64) {
	t.Helper()
	for _, ss := range b.statefulSets {
		if g := ss.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != seconds {
			t.Errorf("StatefulSet %s: terminationGracePeriodSeconds %v, want %d", ss.Name, g, seconds)
		}
	}
}

// wantArg: every container running target has arg.
func wantArg(t *testing.T, b *bundle, target, arg string) {
	t.Helper()
	found := false
	for _, wl := range b.workloads() {
		for c, flags := range containersOf(t, wl) {
			if flags["target"] != target {
				continue
			}
			found = true
			if !strings.Contains(strings.Join(c.Args, "\n")+"\n", arg+"\n") {
				t.Errorf("%s: no %s in %v", wl.name, arg, c.Args)
			}
		}
	}
	if !found {
		t.Errorf("nothing runs %s", target)
	}
}
