package scenario

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata scenarios")

// Run runs every file matching pattern as a subtest. A file is blocks
// separated by blank lines: comment lines (#), then a command line, then
// "----" and the command's expected output. For each file, start returns
// the function that runs one command, given its fields, and returns what
// it printed. With -update the files are rewritten with what was printed;
// otherwise every output must be as written.
func Run(t *testing.T, pattern string, start func(t *testing.T) func(fields []string) string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenario matches %s", pattern)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			run := start(t)
			var out strings.Builder
			for _, block := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
				cmd, _, _ := strings.Cut(block, "\n----")
				cmd = strings.TrimSpace(cmd)
				lines := strings.Split(cmd, "\n")
				fields := strings.Fields(lines[len(lines)-1])
				if len(fields) == 0 {
					t.Fatalf("%s: a block without a command: %q", file, block)
				}
				fmt.Fprintf(&out, "%s\n----\n%s\n\n", cmd, run(fields))
			}
			got := strings.TrimSpace(out.String()) + "\n"
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := strings.TrimSpace(string(data)) + "\n"; got != want {
				t.Errorf("%s: output differs (go test -run %s -update rewrites it)\n--- want\n%s\n--- got\n%s", file, t.Name(), want, got)
			}
		})
	}
}
