package store

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// benchSeries returns n series spread over 10 jobs, like one scrape of a
// fleet, each with the same chunk ending at maxt.
func benchSeries(n int, c Chunk) []SeriesChunks {
	out := make([]SeriesChunks, n)
	for i := range out {
		out[i] = seriesOf(labels.FromStrings(
			"__name__", "http_requests_total",
			"instance", fmt.Sprintf("host-%d:9100", i),
			"job", fmt.Sprintf("job-%d", i%10),
		), c)
	}
	return out
}

// BenchmarkPut measures the store's own cost of flushing a batch of 1000
// series (fsync is off: it measures the disk, not the store).
func BenchmarkPut(b *testing.B) {
	s := openTest(b, testOptions(b))
	c := xorChunk(b, 0, 120, 15_000)
	batch := benchSeries(1000, c)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// A new MaxTime each round, so chunks are added, not overwritten.
		shift := int64(i) * (c.MaxTime + 1)
		for j := range batch {
			batch[j].Chunks[0].MinTime = c.MinTime + shift
			batch[j].Chunks[0].MaxTime = c.MaxTime + shift
		}
		require.NoError(b, s.Put("t1", batch))
	}
}

// BenchmarkSelect reads 100 of 10000 series, 1 of their 10 chunks each.
func BenchmarkSelect(b *testing.B) {
	s := openTest(b, testOptions(b))
	const step = 2 * 3600 * 1000
	for k := range 10 {
		c := xorChunk(b, int64(k)*step, 120, step/120)
		require.NoError(b, s.Put("t1", benchSeries(10_000, c)))
	}
	m := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total"),
		labels.MustNewMatcher(labels.MatchEqual, "job", "job-3"),
		labels.MustNewMatcher(labels.MatchRegexp, "instance", "host-1.*"),
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Select("t1", 5*step+1, 5*step+2, m...)
		require.NoError(b, err)
		require.Len(b, got, 111)
	}
}
