package loadgen

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestSeriesPerInstance(t *testing.T) {
	for _, instances := range []int{1, 2, 7} {
		require.Equal(t, instances*SeriesPerInstance, New(42, instances).Len())
	}
}

func TestCatalogueFamilies(t *testing.T) {
	g := New(1, 2)
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, ls := range g.Series() {
		key := ls.String()
		require.False(t, seen[key], "duplicate series %s", key)
		seen[key] = true
		require.NotEmpty(t, ls.Get("job"), key)
		require.NotEmpty(t, ls.Get("instance"), key)
		counts[ls.Get(model.MetricNameLabel)]++
	}
	// Per instance, times two instances.
	tests := []struct {
		name string
		want int
	}{
		{"up", 3},
		{"node_load1", 1},
		{"node_cpu_seconds_total", 32},
		{"node_cpu_guest_seconds_total", 8},
		{"node_memory_MemAvailable_bytes", 1},
		{"node_filesystem_avail_bytes", 2},
		{"node_disk_read_bytes_total", 2},
		{"node_network_transmit_bytes_total", 2},
		{"prometheus_http_requests_total", 18},
		{"prometheus_http_request_duration_seconds_bucket", 60},
		{"prometheus_http_request_duration_seconds_count", 6},
		{"prometheus_tsdb_compaction_chunk_range_bucket", 11},
		{"prometheus_tsdb_wal_fsync_duration_seconds", 3},
		{"prometheus_tsdb_wal_fsync_duration_seconds_sum", 1},
		{"promhttp_metric_handler_requests_total", 3},
		{"api_http_requests_total", 16},
		{"http_requests_total", 18},
	}
	for _, tt := range tests {
		require.Equal(t, 2*tt.want, counts[tt.name], tt.name)
	}
	require.Equal(t, `{__name__="up", instance="host-001:9100", job="node"}`, g.Series()[SeriesPerInstance].String())
}

func TestDeterminism(t *testing.T) {
	a, b := New(7, 3), New(7, 3)
	other := New(8, 3)
	prefix := NewWithSeries(7, 500)
	require.Equal(t, 500, prefix.Len())
	differs := 0
	for i := 0; i < a.Len(); i++ {
		require.True(t, labels.Equal(a.Series()[i], b.Series()[i]))
		for _, step := range []int{0, 1, 29, 30, 31, 1000, 100000} {
			v := a.Value(i, step)
			require.Equal(t, v, b.Value(i, step), "series %d step %d", i, step)
			if i < prefix.Len() {
				require.Equal(t, v, prefix.Value(i, step), "series %d step %d", i, step)
			}
			if v != other.Value(i, step) {
				differs++
			}
		}
	}
	require.Greater(t, differs, a.Len(), "seed should change most values")
}

// isCounter tells counters from gauges by the naming conventions the
// catalogue follows.
func isCounter(ls labels.Labels) bool {
	name := ls.Get(model.MetricNameLabel)
	for _, suffix := range []string{"_total", "_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func TestCountersMonotonicExceptOneReset(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		wantReset int // step of the single drop, or 0 for none
	}{
		{"default", nil, DefaultResetStep},
		{"moved", []Option{WithResetStep(100)}, 100},
		{"disabled", []Option{WithResetStep(0)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(3, 3, tt.opts...)
			resetSeries, resetStep, ok := g.Reset()
			require.Equal(t, tt.wantReset != 0, ok)
			var drops []int
			for i, ls := range g.Series() {
				if !isCounter(ls) {
					continue
				}
				prev := g.Value(i, 0)
				for step := 1; step <= 240; step++ {
					v := g.Value(i, step)
					if v < prev {
						drops = append(drops, i, step)
						require.Less(t, v, prev/2, "a reset must be a clear drop")
					}
					prev = v
				}
			}
			if tt.wantReset == 0 {
				require.Empty(t, drops)
				return
			}
			require.Equal(t, []int{resetSeries, resetStep}, drops)
			require.Equal(t, tt.wantReset, resetStep)
			require.Equal(t, "http_requests_total", g.Series()[resetSeries].Get(model.MetricNameLabel))
		})
	}
}

func TestHistogramsCumulative(t *testing.T) {
	g := New(5, 2)
	series := g.Series()
	for i := 0; i < len(series); i++ {
		if !strings.HasSuffix(series[i].Get(model.MetricNameLabel), "_bucket") || series[i].Get("le") == "+Inf" {
			continue
		}
		// Buckets of one child are adjacent and end with +Inf, _sum, _count.
		for step := 0; step < 100; step += 7 {
			require.LessOrEqual(t, g.Value(i, step), g.Value(i+1, step), "%s step %d", series[i], step)
		}
		if series[i+1].Get("le") == "+Inf" {
			name := strings.TrimSuffix(series[i+1].Get(model.MetricNameLabel), "_bucket")
			require.Equal(t, name+"_count", series[i+3].Get(model.MetricNameLabel))
			for step := 0; step < 100; step += 7 {
				require.Equal(t, g.Value(i+1, step), g.Value(i+3, step))
				require.Positive(t, g.Value(i+2, step), "_sum")
			}
		}
	}
}

func TestGaugesPlausible(t *testing.T) {
	g := New(9, 8)
	index := map[string]int{}
	for i, ls := range g.Series() {
		index[ls.String()] = i
	}
	get := func(name, instance string, kv ...string) int {
		ls := labels.FromStrings(append([]string{"__name__", name, "instance", instance}, kv...)...)
		i, ok := index[ls.String()]
		require.True(t, ok, "missing %s", ls)
		return i
	}
	sawDown, sawFraction := false, false
	for inst := 0; inst < 8; inst++ {
		node := instanceName(inst, 9100)
		prom := instanceName(inst, 9090)
		for step := 0; step < 500; step += 3 {
			v := func(i int) float64 { return g.Value(i, step) }
			total := v(get("node_memory_MemTotal_bytes", node, "job", "node"))
			used := v(get("node_memory_MemFree_bytes", node, "job", "node")) +
				v(get("node_memory_Buffers_bytes", node, "job", "node")) +
				v(get("node_memory_Cached_bytes", node, "job", "node"))
			require.Less(t, used, total)
			require.LessOrEqual(t, v(get("node_memory_MemAvailable_bytes", node, "job", "node")), total)
			fs := []string{"job", "node", "device", "/dev/sda1", "mountpoint", "/", "fstype", "ext4"}
			require.Less(t, v(get("node_filesystem_avail_bytes", node, fs...)), v(get("node_filesystem_size_bytes", node, fs...)))
			load := v(get("node_load1", node, "job", "node"))
			require.True(t, load >= 0 && load <= 6, "load %v", load)
			q := func(quantile string) float64 {
				return v(get("prometheus_tsdb_wal_fsync_duration_seconds", prom, "job", "prometheus", "quantile", quantile))
			}
			require.LessOrEqual(t, q("0.5"), q("0.9"))
			require.LessOrEqual(t, q("0.9"), q("0.99"))
			up := v(get("up", instanceName(inst, 8080), "job", "api"))
			require.Contains(t, []float64{0, 1}, up)
			sawDown = sawDown || up == 0
			sawFraction = sawFraction || load != math.Trunc(load)
		}
	}
	require.True(t, sawDown, "some target should be down at times")
	require.True(t, sawFraction, "fractional values should appear")
}
