package k8stest

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// lastFlushMargin is the least time an ingester's grace period must leave
// after -ingester.shutdown-timeout: on that deadline the ingester stops
// retrying its handover, then flushes its memory to its store and
// checkpoints (ingester.Stop), which must not be cut by SIGKILL.
const lastFlushMargin = 30 * time.Second

// statelessTargets run as Deployments; ingesters as StatefulSets.
var statelessTargets = []string{"distributor", "querier", "query-frontend", "ruler"}

// want is what a bundle must hold beyond what every bundle must.
type want struct {
	// hpas: the stateless components are autoscaled.
	hpas bool
	// zones of the ingesters; empty: one StatefulSet without zones.
	zones []string
	// ruleTenants whose rules ConfigMaps the rulers mount, sorted.
	ruleTenants []string
	// externalSecrets are Secrets the bundle mounts but leaves to the user
	// to create; the others must be in the bundle.
	externalSecrets []string
	// serviceMonitors: one per component.
	serviceMonitors bool
}

// workload is one pod template with the name of what owns it.
type workload struct {
	name   string
	labels map[string]string
	pod    *corev1.PodSpec
	// claims are the StatefulSet's volumeClaimTemplates' names.
	claims []string
}

func (b *bundle) workloads() []workload {
	var ws []workload
	for _, s := range b.statefulSets {
		w := workload{name: "StatefulSet " + s.Name, labels: s.Spec.Template.Labels, pod: &s.Spec.Template.Spec}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		ws = append(ws, w)
	}
	for _, d := range b.deployments {
		ws = append(ws, workload{name: "Deployment " + d.Name, labels: d.Spec.Template.Labels, pod: &d.Spec.Template.Spec})
	}
	return ws
}

// args parses a container's args as the flag package would: every one a
// -flag or -flag=value, a flag given once.
func args(c *corev1.Container) (map[string]string, error) {
	flags := map[string]string{}
	for _, a := range c.Args {
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("argument %q is not a flag (orrery takes no others)", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue {
			value = "true" // only boolean flags may stand alone
		}
		if _, dup := flags[name]; dup {
			return nil, fmt.Errorf("flag -%s given twice", name)
		}
		flags[name] = value
	}
	return flags, nil
}

// flag returns a flag's value in flags, or orrery's default.
func flag(flags map[string]string, name string) string {
	if v, ok := flags[name]; ok {
		return v
	}
	return orrery.defaults[name]
}

// containersOf returns the orrery containers of w with their flags,
// failing t on a flag orrery does not know.
func containersOf(t *testing.T, w workload) map[*corev1.Container]map[string]string {
	t.Helper()
	out := map[*corev1.Container]map[string]string{}
	for i := range w.pod.Containers {
		c := &w.pod.Containers[i]
		flags, err := args(c)
		if err != nil {
			t.Errorf("%s, container %s: %v", w.name, c.Name, err)
			continue
		}
		out[c] = flags
	}
	return out
}

// target returns the one target a workload's containers run.
func target(t *testing.T, w workload) string {
	t.Helper()
	var targets []string
	for _, flags := range containersOf(t, w) {
		targets = append(targets, flag(flags, "target"))
	}
	if len(targets) != 1 {
		t.Errorf("%s: %d containers, want one running orrery", w.name, len(targets))
		return ""
	}
	return targets[0]
}

// checkBundle checks what every set of Orrery's manifests must keep, and
// what w asks for.
func checkBundle(t *testing.T, b *bundle, w want) {
	t.Helper()
	checkFlags(t, b)
	checkConfig(t, b)
	checkPaths(t, b)
	checkDataDir(t, b)
	checkVolumes(t, b, w)
	checkProbes(t, b)
	checkServices(t, b)
	checkIngesters(t, b, w)
	checkStateless(t, b, w)
	checkSecrets(t, b)
	checkOverrides(t, b)
	checkRules(t, b, w)
	if w.serviceMonitors {
		checkServiceMonitors(t, b.serviceMonitors, b)
	} else if len(b.serviceMonitors) != 0 {
		t.Errorf("%d ServiceMonitors, want none", len(b.serviceMonitors))
	}
}

// checkFlags: every flag is one of orrery -help's, -target names a target,
// every $(VAR) is a variable the container defines, and every process has
// the same -replication-factor (docs/operations.md, "Processes").
func checkFlags(t *testing.T, b *bundle) {
	t.Helper()
	rfs := map[string][]string{}
	for _, w := range b.workloads() {
		for c, flags := range containersOf(t, w) {
			where := w.name + ", container " + c.Name
			for name, value := range flags {
				if _, ok := orrery.defaults[name]; !ok {
					t.Errorf("%s: -%s is not a flag of orrery -help", where, name)
				}
				for _, ref := range varRef.FindAllStringSubmatch(value, -1) {
					if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == ref[1] }) {
						t.Errorf("%s: -%s uses $(%s), which the container does not define", where, name, ref[1])
					}
				}
			}
			if tg := flags["target"]; !orrery.targets[tg] {
				t.Errorf("%s: -target=%q is not one of orrery's targets %v", where, tg, orrery.targets)
			}
			rf := flag(flags, "replication-factor")
			rfs[rf] = append(rfs[rf], where)
		}
	}
	if len(rfs) != 1 {
		t.Errorf("-replication-factor differs between processes: %v", rfs)
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkPaths: every file or directory a flag names is on a volume the
// container mounts, and a file directly in a mounted Secret or ConfigMap
// of the bundle is one of its keys.
func checkPaths(t *testing.T, b *bundle) {
	t.Helper()
	for _, w := range b.workloads() {
		for c, flags := range containersOf(t, w) {
			for name, value := range flags {
				// The rule path may be missing (the ruler reads none);
				// checkRules checks what is mounted under it.
				if !strings.HasPrefix(value, "/") || name == "ruler.rule-path" {
					continue
				}
				m := mountOf(c, value)
				if m == nil {
					t.Errorf("%s, container %s: -%s=%s is on no volume it mounts", w.name, c.Name, name, value)
					continue
				}
				key, ok := strings.CutPrefix(value, m.MountPath+"/")
				if !ok || strings.Contains(key, "/") {
					continue
				}
				if keys, found := b.volumeKeys(w.pod, m.Name); found && !slices.Contains(keys, key) {
					t.Errorf("%s, container %s: -%s=%s, but volume %s holds only %v", w.name, c.Name, name, value, m.Name, keys)
				}
			}
		}
	}
}

// checkDataDir: orrery creates -data.dir at start whatever it runs, so it
// must be on a writable volume: the root file system is read-only.
func checkDataDir(t *testing.T, b *bundle) {
	t.Helper()
	for _, w := range b.workloads() {
		for c, flags := range containersOf(t, w) {
			dir := flag(flags, "data.dir")
			if m := mountOf(c, dir); m == nil || m.ReadOnly {
				t.Errorf("%s, container %s: -data.dir=%s is on no writable volume", w.name, c.Name, dir)
			}
		}
	}
}

// mountOf returns the container's mount that holds p, the deepest one.
func mountOf(c *corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

// volumeKeys returns the keys of the Secret or ConfigMap behind a pod's
// volume, when the bundle holds it.
func (b *bundle) volumeKeys(pod *corev1.PodSpec, volume string) ([]string, bool) {
	for _, v := range pod.Volumes {
		if v.Name != volume {
			continue
		}
		switch {
		case v.Secret != nil:
			if s := b.secret(v.Secret.SecretName); s != nil {
				return keysOf(s.StringData, s.Data), true
			}
		case v.ConfigMap != nil:
			if cm := b.configMap(v.ConfigMap.Name); cm != nil {
				return keysOf(cm.Data, cm.BinaryData), true
			}
		}
	}
	return nil, false
}

func keysOf[T any](a map[string]string, b map[string]T) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		keys = append(keys, k)
	}
	return keys
}

func (b *bundle) secret(name string) *corev1.Secret {
	for _, s := range b.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (b *bundle) configMap(name string) *corev1.ConfigMap {
	for _, cm := range b.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

// checkVolumes: every mount is a volume of the pod, every Secret is in the
// bundle or one the user creates, and every ConfigMap is in the bundle or
// optional.
func checkVolumes(t *testing.T, b *bundle, w want) {
	t.Helper()
	for _, wl := range b.workloads() {
		for _, c := range wl.pod.Containers {
			for _, m := range c.VolumeMounts {
				if !slices.ContainsFunc(wl.pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) && !slices.Contains(wl.claims, m.Name) {
					t.Errorf("%s, container %s: mounts %s, which is no volume of the pod", wl.name, c.Name, m.Name)
				}
			}
		}
		for _, v := range wl.pod.Volumes {
			switch {
			case v.Secret != nil:
				name := v.Secret.SecretName
				if b.secret(name) == nil && !slices.Contains(w.externalSecrets, name) {
					t.Errorf("%s: Secret %s is neither in the manifests nor one the user creates (%v)", wl.name, name, w.externalSecrets)
				}
				if b.secret(name) != nil && slices.Contains(w.externalSecrets, name) {
					t.Errorf("%s: Secret %s is the user's, but the manifests hold one too", wl.name, name)
				}
			case v.ConfigMap != nil:
				optional := v.ConfigMap.Optional != nil && *v.ConfigMap.Optional
				if b.configMap(v.ConfigMap.Name) == nil && !optional {
					t.Errorf("%s: ConfigMap %s is not in the manifests and not optional", wl.name, v.ConfigMap.Name)
				}
			}
		}
	}
}

// checkProbes: every process is ready by /ready on a port it serves.
func checkProbes(t *testing.T, b *bundle) {
	t.Helper()
	for _, w := range b.workloads() {
		for _, c := range w.pod.Containers {
			p := c.ReadinessProbe
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" {
				t.Errorf("%s, container %s: readiness probe %+v, want GET /ready", w.name, c.Name, p)
				continue
			}
			if !hasPort(c, p.HTTPGet.Port, corev1.ProtocolTCP) {
				t.Errorf("%s, container %s: readiness probe on port %s, which the container does not declare", w.name, c.Name, p.HTTPGet.Port.String())
			}
		}
	}
}

func hasPort(c corev1.Container, port intstr.IntOrString, protocol corev1.Protocol) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if proto != protocol {
			return false
		}
		if port.Type == intstr.String {
			return p.Name == port.StrVal
		}
		return p.ContainerPort == port.IntVal
	})
}

// servedBy returns the workloads whose pods a selector picks.
func (b *bundle) servedBy(selector map[string]string) []workload {
	var ws []workload
	for _, w := range b.workloads() {
		if len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(w.labels)) {
			ws = append(ws, w)
		}
	}
	return ws
}

// checkServices: every Service selects pods, and each of its ports leads
// to a port every one of them declares; the gossip Service reaches every
// process; a StatefulSet's serviceName is a headless Service.
func checkServices(t *testing.T, b *bundle) {
	t.Helper()
	gossip := 0
	for _, s := range b.services {
		ws := b.servedBy(s.Spec.Selector)
		if len(ws) == 0 {
			t.Errorf("Service %s selects no pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			for _, w := range ws {
				if !slices.ContainsFunc(w.pod.Containers, func(c corev1.Container) bool { return hasPort(c, target, proto) }) {
					t.Errorf("Service %s, port %s: %s declares no %s port %s", s.Name, p.Name, w.name, proto, target.String())
				}
			}
		}
		if slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 7946 }) {
			gossip++
			if len(ws) != len(b.workloads()) || s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses {
				t.Errorf("gossip Service %s: must be headless, list not-ready pods and select every process; selects %d of %d", s.Name, len(ws), len(b.workloads()))
			}
		}
	}
	if gossip != 1 {
		t.Errorf("%d gossip Services, want 1", gossip)
	}
	for _, ss := range b.statefulSets {
		i := slices.IndexFunc(b.services, func(s *corev1.Service) bool { return s.Name == ss.Spec.ServiceName })
		if i < 0 || b.services[i].Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet %s: serviceName %q is not a headless Service of the manifests", ss.Name, ss.Spec.ServiceName)
		}
	}
	// Every process must also join the gossip Service by -memberlist.join.
	for _, w := range b.workloads() {
		for c, flags := range containersOf(t, w) {
			host := strings.Split(flag(flags, "memberlist.join"), ":")[0]
			if !slices.ContainsFunc(b.services, func(s *corev1.Service) bool { return s.Name == host }) {
				t.Errorf("%s, container %s: -memberlist.join=%s is no Service of the manifests", w.name, c.Name, flags["memberlist.join"])
			}
		}
	}
}

// checkIngesters: StatefulSets with volumes, the rollout docs/operations.md
// calls safe, a PodDisruptionBudget of one, a grace period that covers the
// handover's deadline and the last flush, and zones as asked.
func checkIngesters(t *testing.T, b *bundle, w want) {
	t.Helper()
	var ingesters []workload
	for _, wl := range b.workloads() {
		if target(t, wl) == "ingester" {
			ingesters = append(ingesters, wl)
		}
	}
	wantSets := max(len(w.zones), 1)
	if len(ingesters) != wantSets || len(b.statefulSets) != wantSets {
		t.Fatalf("%d ingester workloads and %d StatefulSets, want %d StatefulSets of ingesters", len(ingesters), len(b.statefulSets), wantSets)
	}
	var zones []string
	for i, ss := range b.statefulSets {
		wl := ingesters[i]
		if ss.Spec.PodManagementPolicy != "Parallel" {
			t.Errorf("StatefulSet %s: podManagementPolicy %q; several ingesters may leave at once (docs/operations.md, \"Scaling in\")", ss.Name, ss.Spec.PodManagementPolicy)
		}
		// One ingester down at a time (docs/operations.md, "Restarting").
		// A StatefulSet per zone cannot coordinate its rolling update with
		// the others', so those wait for their pods to be deleted.
		u := ss.Spec.UpdateStrategy
		oneAtATime := u.Type == "RollingUpdate" && u.RollingUpdate != nil && u.RollingUpdate.MaxUnavailable != nil &&
			u.RollingUpdate.MaxUnavailable.String() == "1" && (u.RollingUpdate.Partition == nil || *u.RollingUpdate.Partition == 0)
		if len(w.zones) > 0 && u.Type != "OnDelete" {
			t.Errorf("StatefulSet %s: update strategy %+v; with a StatefulSet per zone, their rolling updates would take an ingester of each zone at once", ss.Name, u)
		}
		if len(w.zones) == 0 && !oneAtATime {
			t.Errorf("StatefulSet %s: update strategy %+v, want a rolling update of one ingester at a time", ss.Name, u)
		}
		if ss.Spec.Replicas == nil || *ss.Spec.Replicas < 1 {
			t.Errorf("StatefulSet %s: no replicas", ss.Name)
		}
		for c, flags := range containersOf(t, wl) {
			m := mountOf(c, flag(flags, "data.dir"))
			if m == nil || m.MountPath != flag(flags, "data.dir") || !slices.Contains(wl.claims, m.Name) {
				t.Errorf("StatefulSet %s: -data.dir=%s is not a volume claim template's mount", ss.Name, flag(flags, "data.dir"))
			}
			checkGracePeriod(t, wl, c, flags)
			if c.LivenessProbe != nil {
				t.Errorf("StatefulSet %s: a liveness probe would restart an ingester that is slow replaying its WAL or handing over", ss.Name)
			}
			zone := flags["instance.zone"]
			if len(w.zones) == 0 {
				if zone != "" {
					t.Errorf("StatefulSet %s: -instance.zone=%s without zones", ss.Name, zone)
				}
				checkSpread(t, wl, "topology.kubernetes.io/zone")
				continue
			}
			zones = append(zones, zone)
			if !pinnedToZone(wl.pod, zone) {
				t.Errorf("StatefulSet %s: -instance.zone=%s, but its pods are not pinned to that zone by node affinity", ss.Name, zone)
			}
		}
		checkSpread(t, wl, "kubernetes.io/hostname")
	}
	slices.Sort(zones)
	if len(w.zones) > 0 && !slices.Equal(zones, w.zones) {
		t.Errorf("ingester zones %v, want %v", zones, w.zones)
	}
	for _, wl := range b.workloads() {
		for c, flags := range containersOf(t, wl) {
			aware := flag(flags, "ring.zone-awareness-enabled") == "true"
			if aware != (len(w.zones) > 0) {
				t.Errorf("%s, container %s: -ring.zone-awareness-enabled=%v with zones %v", wl.name, c.Name, aware, w.zones)
			}
			if rf, _ := strconv.Atoi(flag(flags, "replication-factor")); len(w.zones) > 0 && len(w.zones) < rf {
				t.Errorf("%s: %d zones cannot hold %d replicas in distinct zones", wl.name, len(w.zones), rf)
			}
		}
	}
	checkPDB(t, b, ingesters)
}

// checkGracePeriod: Kubernetes sends SIGKILL terminationGracePeriodSeconds
// after it starts stopping the pod, a preStop hook included. SIGTERM starts
// the handover, retried until -ingester.shutdown-timeout, then the last
// flush: the grace period must cover the hook, the deadline and
// lastFlushMargin, or an ingester is killed mid-flush.
func checkGracePeriod(t *testing.T, wl workload, c *corev1.Container, flags map[string]string) {
	t.Helper()
	timeout, err := time.ParseDuration(flag(flags, "ingester.shutdown-timeout"))
	if err != nil {
		t.Errorf("%s: -ingester.shutdown-timeout: %v", wl.name, err)
		return
	}
	var hook time.Duration
	if l := c.Lifecycle; l != nil && l.PreStop != nil {
		if l.PreStop.Sleep == nil {
			// An exec or HTTP hook's duration is unknown here, and it
			// would spend the grace period before the handover starts.
			t.Errorf("%s: a preStop hook other than a sleep: %+v", wl.name, l.PreStop)
		} else {
			hook = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if wl.pod.TerminationGracePeriodSeconds == nil {
		t.Errorf("%s: no terminationGracePeriodSeconds (Kubernetes' default is 30 s)", wl.name)
		return
	}
	grace := time.Duration(*wl.pod.TerminationGracePeriodSeconds) * time.Second
	if need := hook + timeout + lastFlushMargin; grace < need {
		t.Errorf("%s: terminationGracePeriodSeconds %v < preStop %v + -ingester.shutdown-timeout %v + last flush %v", wl.name, grace, hook, timeout, lastFlushMargin)
	}
}

func pinnedToZone(pod *corev1.PodSpec, zone string) bool {
	if pod.Affinity == nil || pod.Affinity.NodeAffinity == nil || pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	// Terms are ORed: each must pin the zone.
	return len(terms) > 0 && !slices.ContainsFunc(terms, func(term corev1.NodeSelectorTerm) bool {
		return !slices.ContainsFunc(term.MatchExpressions, func(e corev1.NodeSelectorRequirement) bool {
			return e.Key == "topology.kubernetes.io/zone" && e.Operator == corev1.NodeSelectorOpIn && slices.Equal(e.Values, []string{zone})
		})
	})
}

// checkSpread: the pods spread over key, and each constraint counts the
// workload's own pods.
func checkSpread(t *testing.T, wl workload, key string) {
	t.Helper()
	found := false
	for _, c := range wl.pod.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || c.LabelSelector == nil || !sel.Matches(labels.Set(wl.labels)) {
			t.Errorf("%s: topology spread over %s does not count its own pods (%v)", wl.name, c.TopologyKey, err)
		}
		found = found || c.TopologyKey == key
	}
	if !found {
		t.Errorf("%s: no topology spread constraint over %s", wl.name, key)
	}
}

// checkPDB: every workload is covered by exactly one PodDisruptionBudget
// that lets one pod be evicted at a time; the ingesters' one covers all
// ingester workloads (across zones, only one ingester may be down) and no
// other workload, and every other covers one workload.
func checkPDB(t *testing.T, b *bundle, ingesters []workload) {
	t.Helper()
	covered := map[string]int{}
	for _, p := range b.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
			continue
		}
		var ingesterPDB, otherPDB int
		for _, wl := range b.workloads() {
			if !sel.Matches(labels.Set(wl.labels)) {
				continue
			}
			covered[wl.name]++
			if slices.ContainsFunc(ingesters, func(i workload) bool { return i.name == wl.name }) {
				ingesterPDB++
			} else {
				otherPDB++
			}
		}
		switch {
		case ingesterPDB > 0 && (otherPDB > 0 || ingesterPDB != len(ingesters)):
			t.Errorf("PodDisruptionBudget %s: covers %d of %d ingester workloads and %d others", p.Name, ingesterPDB, len(ingesters), otherPDB)
		case ingesterPDB == 0 && otherPDB != 1:
			t.Errorf("PodDisruptionBudget %s: covers %d workloads, want 1", p.Name, otherPDB)
		}
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" || p.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget %s: want maxUnavailable 1", p.Name)
		}
	}
	for _, wl := range b.workloads() {
		if covered[wl.name] != 1 {
			t.Errorf("%s: covered by %d PodDisruptionBudgets, want 1", wl.name, covered[wl.name])
		}
	}
}

// checkStateless: one Deployment per stateless component, rolled out by
// surge, with a preStop sleep within its grace period and, when asked, a
// HorizontalPodAutoscaler that owns its replicas.
func checkStateless(t *testing.T, b *bundle, w want) {
	t.Helper()
	byTarget := map[string][]string{}
	for _, d := range b.deployments {
		wl := workload{name: "Deployment " + d.Name, labels: d.Spec.Template.Labels, pod: &d.Spec.Template.Spec}
		tg := target(t, wl)
		byTarget[tg] = append(byTarget[tg], d.Name)
		s := d.Spec.Strategy
		if s.Type != "RollingUpdate" || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" {
			t.Errorf("%s: strategy %+v, want a rolling update that never goes below the replicas", wl.name, s)
		}
		for _, c := range wl.pod.Containers {
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Errorf("%s: no preStop sleep to outlast its removal from the Service's endpoints", wl.name)
			} else if grace := wl.pod.TerminationGracePeriodSeconds; grace == nil || *grace <= c.Lifecycle.PreStop.Sleep.Seconds {
				t.Errorf("%s: the grace period does not outlast the preStop sleep", wl.name)
			}
			if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Errorf("%s: no CPU request, which autoscaling on CPU utilization needs", wl.name)
			}
		}
		checkSpread(t, wl, "topology.kubernetes.io/zone")
		checkSpread(t, wl, "kubernetes.io/hostname")
		hpa := slices.IndexFunc(b.hpas, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			return h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.APIVersion == "apps/v1" && h.Spec.ScaleTargetRef.Name == d.Name
		})
		switch {
		case w.hpas && hpa < 0:
			t.Errorf("%s: no HorizontalPodAutoscaler", wl.name)
		case w.hpas && d.Spec.Replicas != nil:
			t.Errorf("%s: sets replicas, which its HorizontalPodAutoscaler owns", wl.name)
		case !w.hpas && hpa >= 0:
			t.Errorf("%s: a HorizontalPodAutoscaler, none wanted", wl.name)
		case !w.hpas && (d.Spec.Replicas == nil || *d.Spec.Replicas < 1):
			t.Errorf("%s: no replicas without autoscaling", wl.name)
		}
		if hpa >= 0 {
			h := b.hpas[hpa]
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas || len(h.Spec.Metrics) == 0 {
				t.Errorf("HorizontalPodAutoscaler %s: bounds %v..%d, %d metrics", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas, len(h.Spec.Metrics))
			}
		}
	}
	for _, tg := range statelessTargets {
		if len(byTarget[tg]) != 1 {
			t.Errorf("Deployments running %s: %v, want one", tg, byTarget[tg])
		}
	}
	if len(byTarget) != len(statelessTargets) {
		t.Errorf("Deployments by target: %v, want only %v", byTarget, statelessTargets)
	}
	for _, h := range b.hpas {
		if !slices.ContainsFunc(b.deployments, func(d *appsv1.Deployment) bool { return d.Name == h.Spec.ScaleTargetRef.Name }) {
			t.Errorf("HorizontalPodAutoscaler %s scales %s, which is no Deployment of the manifests", h.Name, h.Spec.ScaleTargetRef.Name)
		}
	}
}

// checkSecrets: the manifests hold placeholders only, never a credential.
func checkSecrets(t *testing.T, b *bundle) {
	t.Helper()
	for _, s := range b.secrets {
		if len(s.Data) > 0 {
			t.Errorf("Secret %s: data that is not a placeholder", s.Name)
		}
		for k, v := range s.StringData {
			if !strings.HasPrefix(v, "REPLACE-") {
				t.Errorf("Secret %s, %s: %q is not a placeholder", s.Name, k, v)
			}
		}
	}
}

// checkOverrides: the overrides file every process reads has the shape
// docs/tenancy.md gives it.
func checkOverrides(t *testing.T, b *bundle) {
	t.Helper()
	files := map[string]bool{}
	for _, wl := range b.workloads() {
		for c, flags := range containersOf(t, wl) {
			f := flags["runtime-config.file"]
			if f == "" {
				t.Errorf("%s: no -runtime-config.file", wl.name)
				continue
			}
			m := mountOf(c, f)
			if m == nil {
				continue // checkPaths says so
			}
			for _, v := range wl.pod.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					files[v.ConfigMap.Name+"/"+path.Base(f)] = true
				}
			}
		}
	}
	if len(files) != 1 {
		t.Errorf("overrides files %v, want every process to read the same ConfigMap's", files)
	}
	for f := range files {
		name, key, _ := strings.Cut(f, "/")
		cm := b.configMap(name)
		if cm == nil {
			t.Errorf("overrides ConfigMap %s is not in the manifests", name)
			continue
		}
		var o struct {
			Overrides map[string]map[string]interface{} `json:"overrides"`
		}
		if err := yaml.UnmarshalStrict([]byte(cm.Data[key]), &o); err != nil {
			t.Errorf("ConfigMap %s, %s: %v", name, key, err)
		}
	}
}

// checkRules: each ruler mounts one ConfigMap per tenant at
// <-ruler.rule-path>/<tenant> (docs/rules.md), and every file of those in
// the bundle is a rule file.
func checkRules(t *testing.T, b *bundle, w want) {
	t.Helper()
	for _, wl := range b.workloads() {
		for c, flags := range containersOf(t, wl) {
			if flags["target"] != "ruler" {
				continue
			}
			rulePath := flag(flags, "ruler.rule-path")
			if rulePath == "" {
				rulePath = path.Join(flag(flags, "data.dir"), "rules")
			}
			var tenants []string
			for _, m := range c.VolumeMounts {
				if path.Dir(m.MountPath) != rulePath {
					continue
				}
				tenants = append(tenants, path.Base(m.MountPath))
				i := slices.IndexFunc(wl.pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
				if i < 0 || wl.pod.Volumes[i].ConfigMap == nil {
					t.Errorf("%s: %s is not a ConfigMap", wl.name, m.MountPath)
					continue
				}
				cm := b.configMap(wl.pod.Volumes[i].ConfigMap.Name)
				if cm == nil {
					continue // the user's (checkVolumes: optional)
				}
				checkRuleConfigMap(t, cm)
			}
			slices.Sort(tenants)
			if !slices.Equal(tenants, w.ruleTenants) {
				t.Errorf("%s: rules of tenants %v under %s, want %v", wl.name, tenants, rulePath, w.ruleTenants)
			}
		}
	}
}

// checkRuleConfigMap: every key is a rule file the ruler reads.
func checkRuleConfigMap(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	if len(cm.Data) == 0 {
		t.Errorf("rules ConfigMap %s: no files", cm.Name)
	}
	for file, content := range cm.Data {
		if ext := path.Ext(file); ext != ".yaml" && ext != ".yml" {
			t.Errorf("rules ConfigMap %s: %s is not read (only *.yaml and *.yml are)", cm.Name, file)
		}
		if _, err := decodeRuleFile([]byte(content)); err != nil {
			t.Errorf("rules ConfigMap %s, %s: %v", cm.Name, file, err)
		}
	}
}

// checkServiceMonitors: one per component, each selecting Services of
// services' bundle that run it and expose the port it scrapes.
func checkServiceMonitors(t *testing.T, sms []*monitoringv1.ServiceMonitor, services *bundle) {
	t.Helper()
	// by target, the ServiceMonitors that scrape it
	scraped := map[string]map[string]bool{}
	for _, sm := range sms {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("ServiceMonitor %s: selector %v (%v)", sm.Name, sm.Spec.Selector, err)
			continue
		}
		var matched []*corev1.Service
		for _, s := range services.services {
			if sel.Matches(labels.Set(s.Labels)) {
				matched = append(matched, s)
			}
		}
		if len(matched) == 0 {
			t.Errorf("ServiceMonitor %s selects no Service", sm.Name)
		}
		for _, s := range matched {
			for _, wl := range services.servedBy(s.Spec.Selector) {
				tg := target(t, wl)
				if scraped[tg] == nil {
					scraped[tg] = map[string]bool{}
				}
				scraped[tg][sm.Name] = true
			}
			for _, e := range sm.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
					t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not expose", sm.Name, e.Port, s.Name)
				}
				if e.Path != "/metrics" {
					t.Errorf("ServiceMonitor %s: path %q, want /metrics", sm.Name, e.Path)
				}
			}
		}
	}
	for _, tg := range append([]string{"ingester"}, statelessTargets...) {
		if len(scraped[tg]) != 1 {
			t.Errorf("%s scraped by ServiceMonitors %v, want one", tg, scraped[tg])
		}
	}
}

// checkRemoteWrite: each Prometheus writes to a Service of services'
// bundle that exposes the port and leads to distributors, at the push
// path, with a credential from a Secret of its own bundle.
func checkRemoteWrite(t *testing.T, proms *bundle, services *bundle) {
	t.Helper()
	if len(proms.prometheuses) == 0 {
		t.Fatal("no Prometheus resource")
	}
	for _, p := range proms.prometheuses {
		if len(p.Spec.RemoteWrite) == 0 {
			t.Errorf("Prometheus %s: no remoteWrite", p.Name)
		}
		for _, rw := range p.Spec.RemoteWrite {
			u, err := url.Parse(string(rw.URL))
			if err != nil {
				t.Errorf("Prometheus %s: %v", p.Name, err)
				continue
			}
			if u.Path != "/api/v1/push" {
				t.Errorf("Prometheus %s: writes to %s, want the distributor's /api/v1/push", p.Name, u)
			}
			service := strings.Split(u.Hostname(), ".")[0]
			port, _ := strconv.Atoi(u.Port())
			i := slices.IndexFunc(services.services, func(s *corev1.Service) bool { return s.Name == service })
			if i < 0 {
				t.Errorf("Prometheus %s: writes to %s, which is no Service of the manifests", p.Name, u.Host)
				continue
			}
			s := services.services[i]
			if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == int32(port) }) {
				t.Errorf("Prometheus %s: Service %s exposes no port %d", p.Name, service, port)
			}
			for _, wl := range services.servedBy(s.Spec.Selector) {
				if tg := target(t, wl); tg != "distributor" && tg != "all" {
					t.Errorf("Prometheus %s: Service %s leads to %s, which runs %s", p.Name, service, wl.name, tg)
				}
			}
			a := rw.Authorization
			if a == nil || a.Credentials == nil {
				t.Errorf("Prometheus %s: remote write without the tenant's credential", p.Name)
				continue
			}
			sec := proms.secret(a.Credentials.Name)
			if sec == nil || sec.Namespace != p.Namespace {
				t.Errorf("Prometheus %s: credential Secret %s is not in its namespace %s", p.Name, a.Credentials.Name, p.Namespace)
			} else if _, ok := sec.StringData[a.Credentials.Key]; !ok {
				t.Errorf("Prometheus %s: Secret %s has no key %s", p.Name, sec.Name, a.Credentials.Key)
			}
		}
	}
}
