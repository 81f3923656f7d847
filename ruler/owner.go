package ruler

import (
	"github.com/cespare/xxhash/v2"
)

// owner returns which of rulers evaluates the group namespace/group of
// tenant: the one whose id hashes highest with it (rendezvous hashing).
// Every ruler computes it from the same gossiped list, so each group has
// one owner, and when a ruler joins or leaves only the groups it wins or
// held move. "" when there are no rulers.
func owner(rulers []string, tenantID, namespace, group string) string {
	var best string
	var bestScore uint64
	for _, id := range rulers {
		d := xxhash.New()
		for _, s := range []string{tenantID, namespace, group, id} {
			_, _ = d.WriteString(s)
			// A separator no id or name holds, so ("ab","c") and
			// ("a","bc") differ.
			_, _ = d.Write([]byte{0xff})
		}
		if score := d.Sum64(); best == "" || score > bestScore {
			best, bestScore = id, score
		}
	}
	return best
}
