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

// BenchmarkChurn is issue 12's churn benchmark: every period (a "day",
// compressed to 2 hours of 15 s samples) a job's 200 pods are replaced by
// new ones, as a Kubernetes rollout does. After 1, 10 and 50 periods a
// query over the last hour selects the job: the series it returns stay
// 200, while the store visits every series the job ever had (the index
// has no time dimension, store/DESIGN.md), so its cost grows with
// history. series_all_time is that count.
func BenchmarkChurn(b *testing.B) {
	const (
		pods   = 200
		period = 2 * 3600 * 1000
	)
	for _, periods := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("periods=%d", periods), func(b *testing.B) {
			s := openTest(b, testOptions(b))
			for p := range periods {
				c := xorChunk(b, int64(p)*period, 480, period/480)
				batch := make([]SeriesChunks, pods)
				for k := range batch {
					batch[k] = seriesOf(labels.FromStrings("__name__", "container_cpu_usage_seconds_total",
						"job", "kubelet", "namespace", "shop", "pod", fmt.Sprintf("api-%d-%d", p, k)), c)
				}
				require.NoError(b, s.Put("t1", batch))
			}
			end := int64(periods)*period - 1
			ms := []*labels.Matcher{
				labels.MustNewMatcher(labels.MatchEqual, "__name__", "container_cpu_usage_seconds_total"),
				labels.MustNewMatcher(labels.MatchEqual, "namespace", "shop"),
			}
			b.ReportAllocs()
			for b.Loop() {
				refs, err := s.Refs("t1", end-3600*1000, end, nil, Known{}, ms...)
				require.NoError(b, err)
				require.Len(b, refs, pods)
				got, err := s.ChunksOf("t1", end-3600*1000, end, refs)
				require.NoError(b, err)
				require.Len(b, got, pods)
			}
			b.ReportMetric(float64(periods*pods), "series_all_time")
		})
	}
}
