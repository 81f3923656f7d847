package shard

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Label is the name of the shard matcher's label. No series carries it:
// it only selects.
const Label = "__query_shard__"

// Header is the internal HTTP request header by which a query frontend
// sends the querier one shard of a query, as "<i>_of_<n>"; the querier's
// API puts it into the query's context (WithShard). Clients must not be
// able to reach the querier with it set to something the frontend did not
// mean, so a frontend forwarding client requests drops it.
const Header = "X-Orrery-Query-Shard"

// Matcher returns the equality matcher selecting shard i of n. i and n must
// be valid (1 <= i <= n): it panics otherwise, as they come from the
// caller's own loop, never from input.
func Matcher(i, n int) *labels.Matcher {
	if !valid(i, n) {
		panic(fmt.Sprintf("shard: invalid shard %d of %d", i, n))
	}
	return labels.MustNewMatcher(labels.MatchEqual, Label, Value(i, n))
}

// Value formats shard i of n as the matcher's value, "<i>_of_<n>".
func Value(i, n int) string {
	return strconv.Itoa(i) + "_of_" + strconv.Itoa(n)
}

// Parse reads "<i>_of_<n>" with 1 <= i <= n. Only the form Value writes
// is accepted (no signs, spaces or leading zeros), so one shard has one
// spelling: a cache keyed by the value never holds a shard twice.
func Parse(value string) (i, n int, err error) {
	is, ns, ok := strings.Cut(value, "_of_")
	if ok {
		i, err = strconv.Atoi(is)
		if err == nil {
			n, err = strconv.Atoi(ns)
		}
	}
	if !ok || err != nil || !valid(i, n) || Value(i, n) != value {
		return 0, 0, fmt.Errorf("invalid query shard %q: want <i>_of_<n> with 1 <= i <= n", value)
	}
	return i, n, nil
}

func valid(i, n int) bool { return n >= 1 && i >= 1 && i <= n }

// Owns reports whether the series ls belongs to shard i of n. ls must not
// carry Label. i and n must be valid.
func Owns(ls labels.Labels, i, n int) bool {
	return labels.StableHash(ls)%uint64(n) == uint64(i-1)
}

// Strip removes the shard matcher from ms. ok says whether there was one,
// and i and n are its shard. A shard matcher that is not an equality, has
// an invalid value, or comes more than once is an error: the caller
// cannot honour it, and must not answer as if it were absent. rest is a
// new slice when a matcher was removed; ms is never modified.
func Strip(ms []*labels.Matcher) (rest []*labels.Matcher, i, n int, ok bool, err error) {
	rest = ms
	for k, m := range ms {
		if m.Name != Label {
			continue
		}
		if ok {
			return nil, 0, 0, false, fmt.Errorf("more than one %s matcher", Label)
		}
		if m.Type != labels.MatchEqual {
			return nil, 0, 0, false, fmt.Errorf("%s must be matched with =, not %s", Label, m.Type)
		}
		if i, n, err = Parse(m.Value); err != nil {
			return nil, 0, 0, false, err
		}
		ok = true
		rest = make([]*labels.Matcher, 0, len(ms)-1)
		rest = append(append(rest, ms[:k]...), ms[k+1:]...)
	}
	return rest, i, n, ok, nil
}

type ctxKey struct{}

type value struct{ i, n int }

// WithShard returns ctx carrying shard i of n, which must be valid: a
// querier then reads only that shard's series. It panics on an invalid
// shard, as Matcher does; input goes through Parse first.
func WithShard(ctx context.Context, i, n int) context.Context {
	if !valid(i, n) {
		panic(fmt.Sprintf("shard: invalid shard %d of %d", i, n))
	}
	return context.WithValue(ctx, ctxKey{}, value{i, n})
}

// FromContext returns the shard ctx carries; ok is false when it carries
// none.
func FromContext(ctx context.Context) (i, n int, ok bool) {
	v, ok := ctx.Value(ctxKey{}).(value)
	return v.i, v.n, ok
}
