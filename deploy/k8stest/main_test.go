package k8stest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// orrery is what `orrery -help` says: every flag the binary built from the
// parent module takes, with its default, and the targets -target takes.
var orrery *orreryFlags

type orreryFlags struct {
	// bin is the binary.
	bin string
	// defaults holds every flag, with its default as -help prints it ("" for
	// none).
	defaults map[string]string
	targets  map[string]bool
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orrery-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	orrery, err = buildHelp(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildHelp builds orrery from the parent module into dir and reads its
// -help.
func buildHelp(dir string) (*orreryFlags, error) {
	bin := filepath.Join(dir, "orrery")
	build := exec.Command("go", "build", "-o", bin, "github.com/orrery/orrery/cmd/orrery")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building orrery: %v\n%s", err, out)
	}
	var out bytes.Buffer
	help := exec.Command(bin, "-help")
	help.Stdout, help.Stderr = &out, &out
	// The flag package exits 2 after printing the help it was asked for.
	var exit *exec.ExitError
	if err := help.Run(); err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) {
		return nil, fmt.Errorf("orrery -help: %v\n%s", err, out.Bytes())
	}
	f, err := parseHelp(out.String())
	if err != nil {
		return nil, err
	}
	f.bin = bin
	return f, nil
}

var (
	helpFlagLine = regexp.MustCompile(`^  -([a-z0-9.\-]+)(?: \S+)?$`)
	helpDefault  = regexp.MustCompile(`\(default "?(.*?)"?\)$`)
	helpTargets  = regexp.MustCompile(`Component to run: (.*)\.`)
)

// parseHelp reads the flag package's usage: "  -name type" lines, each
// followed by its description, whose last words are the default.
func parseHelp(help string) (*orreryFlags, error) {
	f := &orreryFlags{defaults: map[string]string{}, targets: map[string]bool{}}
	var flag string
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		if m := helpFlagLine.FindStringSubmatch(line); m != nil {
			flag = m[1]
			f.defaults[flag] = ""
			continue
		}
		if flag == "" || !strings.HasPrefix(line, "    \t") {
			continue
		}
		if m := helpDefault.FindStringSubmatch(line); m != nil {
			f.defaults[flag] = m[1]
		}
		if m := helpTargets.FindStringSubmatch(line); m != nil && flag == "target" {
			for _, t := range strings.FieldsFunc(strings.ReplaceAll(m[1], " or ", ", "), func(r rune) bool { return r == ',' || r == ' ' }) {
				f.targets[t] = true
			}
		}
	}
	if len(f.defaults) < 50 || len(f.targets) == 0 {
		return nil, fmt.Errorf("orrery -help lists %d flags and %d targets; its format changed?\n%s", len(f.defaults), len(f.targets), help)
	}
	return f, nil
}

// The parse is what the flag checks stand on: it must see the flags the
// manifests rely on, with their real defaults.
func TestHelpParsed(t *testing.T) {
	for flag, def := range map[string]string{
		"ingester.shutdown-timeout":     "5m0s",
		"ingester.handover-on-shutdown": "true",
		"replication-factor":            "1",
		"data.dir":                      "./data",
		"ruler.rule-path":               "",
		"instance.zone":                 "",
		"ring.zone-awareness-enabled":   "",
	} {
		got, ok := orrery.defaults[flag]
		if !ok || got != def {
			t.Errorf("-%s: default %q (listed %v), want %q", flag, got, ok, def)
		}
	}
	for _, target := range []string{"all", "distributor", "ingester", "querier", "query-frontend", "ruler"} {
		if !orrery.targets[target] {
			t.Errorf("target %q missing from %v", target, orrery.targets)
		}
	}
}
