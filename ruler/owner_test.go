package ruler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/internal/scenario"
)

// TestOwnershipScenarios runs the scripts in testdata/ownership: rulers
// join and leave, and each step prints how the groups of a few tenants
// are shared and how many moved. Commands (package internal/scenario has
// the format):
//
//	groups <tenants> <groups per tenant>   the groups to place
//	rulers <id>...                         the healthy rulers now
//	owners                                 groups per ruler; groups moved since the last owners
func TestOwnershipScenarios(t *testing.T) {
	scenario.Run(t, "testdata/ownership/*.txt", func(t *testing.T) func([]string) string {
		var groups [][3]string
		var rulers []string
		var last map[[3]string]string
		return func(fields []string) string {
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
				return fmt.Sprintf("%d groups", len(groups))
			case "rulers":
				rulers = slices.Clone(fields[1:])
				return fmt.Sprintf("%d rulers", len(rulers))
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
				return strings.Join(lines, "\n")
			}
			t.Fatalf("unknown command %q", fields[0])
			return ""
		}
	})
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
