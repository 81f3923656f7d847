package ring

import (
	"cmp"
	"slices"
)

// tokenCandidates is how many random token sets a joining instance draws
// before keeping the one that spreads the ring best.
const tokenCandidates = 16

// chooseTokens draws tokenCandidates sets of n random tokens and keeps the
// one under which the most loaded instance, the joiner included, owns the
// least of the token space. Each candidate is as random as a single draw,
// so two instances joining at the same moment still take independent
// shares; the choice only trims the unlucky tail (DESIGN.md has figures).
// others holds the tokens of the instances already in the ring.
func chooseTokens(n int, others map[string][]uint32, taken map[uint32]struct{}, rnd func() uint32) []uint32 {
	var best []uint32
	bestScore := 2.0
	for range tokenCandidates {
		cand := generateTokens(n, taken, rnd)
		if len(others) == 0 {
			return cand
		}
		score := maxShare(others, cand)
		if best == nil || score < bestScore {
			best, bestScore = cand, score
		}
	}
	return best
}

type ownedToken struct {
	token uint32
	owner int
}

// maxShare is the largest fraction of the token space any instance owns
// when mine joins others. A token owns the range from the previous token up
// to itself, as Get walks clockwise to the first token at or after a key.
func maxShare(others map[string][]uint32, mine []uint32) float64 {
	var all []ownedToken
	owner := 0
	for _, tokens := range others {
		for _, t := range tokens {
			all = append(all, ownedToken{t, owner})
		}
		owner++
	}
	for _, t := range mine {
		all = append(all, ownedToken{t, owner})
	}
	slices.SortFunc(all, func(a, b ownedToken) int { return cmp.Compare(a.token, b.token) })
	owned := make([]float64, owner+1)
	for k, t := range all {
		prev := all[(k+len(all)-1)%len(all)].token
		owned[t.owner] += float64(t.token - prev)
	}
	return slices.Max(owned) / (1 << 32)
}
