package shard

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// Every series lands in exactly one of the n shards, for every n, and no
// shard of a large n stays empty (the hash spreads).
func TestShardsPartitionTheSeries(t *testing.T) {
	var all []labels.Labels
	for k := range 2000 {
		all = append(all, labels.FromStrings("__name__", fmt.Sprint("m", k%7), "instance", fmt.Sprint("host-", k), "job", "node"))
	}
	for _, n := range []int{1, 2, 3, 4, 7, 16, 64, 100} {
		perShard := make([]int, n)
		for _, ls := range all {
			owners := 0
			for i := 1; i <= n; i++ {
				if Owns(ls, i, n) {
					owners++
					perShard[i-1]++
				}
			}
			require.Equal(t, 1, owners, "%s in %d shards of %d", ls, owners, n)
		}
		for i, c := range perShard {
			require.NotZero(t, c, "shard %d of %d is empty", i+1, n)
		}
	}
}

// The shard is the contract's: StableHash modulo n, shard i holding
// remainder i-1, so a frontend and an ingester built apart agree.
func TestOwnsIsStableHashModN(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "node")
	h := labels.StableHash(ls)
	require.True(t, Owns(ls, int(h%5)+1, 5))
}

func TestParse(t *testing.T) {
	for _, good := range []struct {
		v    string
		i, n int
	}{{"1_of_1", 1, 1}, {"3_of_16", 3, 16}, {"16_of_16", 16, 16}} {
		i, n, err := Parse(good.v)
		require.NoError(t, err, good.v)
		require.Equal(t, []int{good.i, good.n}, []int{i, n})
		require.Equal(t, good.v, Value(i, n))
		require.Equal(t, good.v, Matcher(i, n).Value)
	}
	for _, bad := range []string{"", "1", "1_of_", "_of_2", "0_of_2", "3_of_2", "1_of_0", "-1_of_2", "+1_of_2",
		"01_of_2", "1_of_02", " 1_of_2", "1_of_2 ", "1of2", "1_OF_2", "1_of_2_of_3", "1_of_99999999999999999999"} {
		_, _, err := Parse(bad)
		require.Error(t, err, bad)
	}
}

func TestStrip(t *testing.T) {
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	job := labels.MustNewMatcher(labels.MatchRegexp, "job", "n.*")
	ms := []*labels.Matcher{name, Matcher(2, 4), job}
	rest, i, n, ok, err := Strip(ms)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []int{2, 4}, []int{i, n})
	require.Equal(t, []*labels.Matcher{name, job}, rest)
	require.Equal(t, Label, ms[1].Name, "the caller's slice is left alone")

	rest, _, _, ok, err = Strip([]*labels.Matcher{name, job})
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, []*labels.Matcher{name, job}, rest)

	for _, bad := range [][]*labels.Matcher{
		{name, labels.MustNewMatcher(labels.MatchEqual, Label, "5_of_4")},
		{labels.MustNewMatcher(labels.MatchRegexp, Label, "1_of_2")},
		{labels.MustNewMatcher(labels.MatchNotEqual, Label, "1_of_2")},
		{Matcher(1, 2), Matcher(1, 2)},
		{Matcher(1, 2), Matcher(2, 2)},
	} {
		_, _, _, _, err := Strip(bad)
		require.Error(t, err, "%v", bad)
	}
}

func TestContext(t *testing.T) {
	_, _, ok := FromContext(context.Background())
	require.False(t, ok)
	i, n, ok := FromContext(WithShard(context.Background(), 3, 8))
	require.True(t, ok)
	require.Equal(t, []int{3, 8}, []int{i, n})
	require.Panics(t, func() { WithShard(context.Background(), 0, 8) })
	require.Panics(t, func() { Matcher(9, 8) })
}

// Whatever a header or matcher carries, Parse accepts only a valid shard
// in its one spelling.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1_of_1", "3_of_16", "0_of_2", "01_of_2", "1_of_", "-1_of_-1", "9223372036854775807_of_9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, n, err := Parse(s)
		if err != nil {
			return
		}
		if i < 1 || i > n || Value(i, n) != s {
			t.Fatalf("Parse(%q) = %d, %d", s, i, n)
		}
	})
}
