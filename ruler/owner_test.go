package ruler

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata scenarios")

// TestOwnershipScenarios runs the scripts in testdata/ownership: rulers
// join and leave, and each step prints how the groups of a few tenants
// are shared and how many moved. Commands, one per line, each followed by
// its expected output after "----" up to a blank line:
//
//	groups <tenants> <groups per tenant>   the groups to place
//	rulers <id>...                         the healthy rulers now
//	owners                                 groups per ruler; groups moved since the last owners
func TestOwnershipScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/ownership/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			var out strings.Builder
			var groups [][3]string
			var rulers []string
			var last map[[3]string]string
			blocks := strings.Split(strings.TrimSpace(string(data)), "\n\n")
			for _, block := range blocks {
				cmd, _, _ := strings.Cut(block, "\n----")
				var result string
				fields := strings.Fields(strings.TrimSpace(lastLine(cmd)))
				switch fields[0] {
				case "groups":
					tenants, _ := strconv.Atoi(fields[1])
					per, _ := strconv.Atoi(fields[2])
					groups = nil
					for tn := range tenants {
						for g := range per {
							groups = append(groups, [3]string{fmt.Sprintf("tenant-%d", tn), fmt.Sprintf("ns-%d", g%3), fmt.Sprintf("group-%d", g)})
						}
					}
					result = fmt.Sprintf("%d groups", len(groups))
				case "rulers":
					rulers = slices.Clone(fields[1:])
					result = fmt.Sprintf("%d rulers", len(rulers))
				case "owners":
					now := map[[3]string]string{}
					count := map[string]int{}
					moved := 0
					for _, g := range groups {
						o := owner(rulers, g[0], g[1], g[2])
						now[g] = o
						count[o]++
						if last != nil && last[g] != o {
							moved++
						}
					}
					var lines []string
					for _, id := range mapsKeys(count) {
						lines = append(lines, fmt.Sprintf("%s: %d", id, count[id]))
					}
					if last != nil {
						lines = append(lines, fmt.Sprintf("moved: %d", moved))
					}
					last = now
					result = strings.Join(lines, "\n")
				default:
					t.Fatalf("%s: unknown command %q", file, fields[0])
				}
				fmt.Fprintf(&out, "%s\n----\n%s\n\n", strings.TrimSpace(cmd), result)
			}
			got := strings.TrimSpace(out.String()) + "\n"
			if *update {
				require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
				return
			}
			require.Equal(t, strings.TrimSpace(string(data))+"\n", got)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func mapsKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Every ruler computes the same owner, whatever order it lists rulers in.
func TestOwnerIgnoresOrder(t *testing.T) {
	a := []string{"r1", "r2", "r3", "r4"}
	b := []string{"r4", "r2", "r1", "r3"}
	for g := range 200 {
		name := fmt.Sprintf("g%d", g)
		require.Equal(t, owner(a, "t", "ns", name), owner(b, "t", "ns", name))
	}
	require.Empty(t, owner(nil, "t", "ns", "g"))
}
