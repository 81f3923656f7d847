package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChosenTokensSpread builds many 4-instance rings, each instance
// joining in turn with 128 tokens, and compares the worst share of the
// token space with plain random tokens and with chooseTokens.
func TestChosenTokensSpread(t *testing.T) {
	const rings, instances, tokens = 200, 4, 128
	worst := func(choose bool) (float64, float64) {
		var all []float64
		for seed := range uint64(rings) {
			r := rand.New(rand.NewPCG(seed, seed))
			others := map[string][]uint32{}
			taken := map[uint32]struct{}{}
			for i := range instances {
				var tk []uint32
				if choose {
					tk = chooseTokens(tokens, others, taken, r.Uint32)
				} else {
					tk = generateTokens(tokens, taken, r.Uint32)
				}
				for _, x := range tk {
					taken[x] = struct{}{}
				}
				others[fmt.Sprint(i)] = tk
			}
			all = append(all, maxShare(others, nil)*instances)
		}
		slices.Sort(all)
		return all[len(all)*99/100], all[len(all)-1]
	}
	p99Random, maxRandom := worst(false)
	p99Chosen, maxChosen := worst(true)
	t.Logf("max/fair token share over %d rings of %d×%d tokens: random p99 %.3f max %.3f; chosen p99 %.3f max %.3f",
		rings, instances, tokens, p99Random, maxRandom, p99Chosen, maxChosen)
	require.Less(t, maxChosen, 1.25)
	require.Less(t, maxChosen, maxRandom)
}
