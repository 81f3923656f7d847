package k8stest

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// podFields stand in for what the downward API gives a pod.
var podFields = map[string]string{"metadata.name": "orrery-test-0", "status.podIP": "10.0.0.1"}

// checkConfig runs every container's args through orrery -print.config,
// which parses each flag's value as its type and validates the whole
// configuration as start-up does (flags that must go together, a zone for
// a zone-aware ingester), then exits. The paths the args name are moved
// under a temporary root, where each mounted ConfigMap of the bundle is
// written, and each mounted Secret as a valid fixture: validation reads
// the gossip key file.
func checkConfig(t *testing.T, b *bundle) {
	t.Helper()
	gossipKey := make([]byte, 32)
	if _, err := rand.Read(gossipKey); err != nil {
		t.Fatal(err)
	}
	secretFixtures := map[string]string{
		"key":         base64.StdEncoding.EncodeToString(gossipKey) + "\n",
		"tokens.yaml": "tokens: [{token: a-tenant-secret, tenant: team-a}]\n",
		"admins.yaml": "tokens: [{token: an-admin-secret}]\n",
	}
	for _, w := range b.workloads() {
		for i := range w.pod.Containers {
			c := &w.pod.Containers[i]
			root := t.TempDir()
			for _, m := range c.VolumeMounts {
				files := map[string]string{}
				for _, v := range w.pod.Volumes {
					switch {
					case v.Name != m.Name:
					case v.Secret != nil:
						files = secretFixtures
					case v.ConfigMap != nil && b.configMap(v.ConfigMap.Name) != nil:
						files = b.configMap(v.ConfigMap.Name).Data
					}
				}
				dir := filepath.Join(root, m.MountPath)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range files {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			args := []string{"-print.config"}
			for _, a := range c.Args {
				name, value, _ := strings.Cut(a, "=")
				if strings.HasPrefix(value, "/") {
					value = filepath.Join(root, value)
				}
				args = append(args, name+"="+expandEnv(value, c.Env))
			}
			cmd := exec.Command(orrery.bin, args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s, container %s: orrery refuses its args: %v\n%s", w.name, c.Name, err, out)
			}
		}
	}
}

// expandEnv replaces $(VAR) as the kubelet does, with podFields for the
// downward API.
func expandEnv(s string, env []corev1.EnvVar) string {
	for _, e := range env {
		value := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			value = podFields[e.ValueFrom.FieldRef.FieldPath]
		}
		s = strings.ReplaceAll(s, "$("+e.Name+")", value)
	}
	return s
}
