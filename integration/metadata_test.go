//go:build integration

package integration

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

func metadataOf(t *testing.T, u string) (int, map[string][]metadataEntry, string) {
	t.Helper()
	code, body := rawGet(t, u)
	var resp struct {
		Data map[string][]metadataEntry `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
	for _, list := range resp.Data {
		slices.SortFunc(list, func(a, b metadataEntry) int {
			return compareStrings(a.Type+a.Help+a.Unit, b.Type+b.Help+b.Unit)
		})
	}
	return code, resp.Data, body
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestMetadataFromRemoteWrite: Debian's Prometheus scrapes itself and
// remote-writes its metadata; Orrery's /metadata then equals that
// Prometheus's own /api/v1/metadata of its scrape target.
func TestMetadataFromRemoteWrite(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	prom := startPrometheus2(t, selfScrapeRemoteWrite(o.url("/api/v1/push"), "    metadata_config: {send: true, send_interval: 1s}"))

	var want, got map[string][]metadataEntry
	require.Eventually(t, func() bool {
		_, want, _ = metadataOf(t, prom+"/api/v1/metadata")
		_, got, _ = metadataOf(t, o.url("/prometheus/api/v1/metadata"))
		return len(want) > 50 && len(got) == len(want)
	}, 30*time.Second, 500*time.Millisecond, "metadata arrives through remote write")
	require.Equal(t, want, got)

	_, one, _ := metadataOf(t, o.url("/prometheus/api/v1/metadata?metric=prometheus_build_info"))
	require.Equal(t, map[string][]metadataEntry{"prometheus_build_info": want["prometheus_build_info"]}, one)
	_, limited, _ := metadataOf(t, o.url("/prometheus/api/v1/metadata?limit=5"))
	require.Len(t, limited, 5)
	// Errors are compared with the reference, Prometheus 3 (2.42 ignores a
	// limit that is not a number).
	prom3 := startPrometheus3(t)
	for _, q := range []string{"limit=x", "limit_per_metric=x"} {
		wantCode, wantBody := rawGet(t, prom3+"/api/v1/metadata?"+q)
		gotCode, gotBody := rawGet(t, o.url("/prometheus/api/v1/metadata?"+q))
		require.Equal(t, wantCode, gotCode)
		require.Equal(t, wantBody, gotBody)
	}
}

// TestPrometheus3RemoteWrite2: Prometheus 3 scrapes itself and sends remote
// write 2.0, its native protocol; Orrery answers up, rejects nothing, and
// serves the metadata that arrived inside the series, equal to that
// Prometheus's own /api/v1/metadata.
func TestPrometheus3RemoteWrite2(t *testing.T) {
	o := startOrrery(t, t.TempDir())
	// Prometheus 3 puts metadata into 2.0 requests only with this feature.
	prom := startPrometheus3WithConfig(t, selfScrapeRemoteWrite(o.url("/api/v1/push"), "    protobuf_message: io.prometheus.write.v2.Request"),
		"--enable-feature=metadata-wal-records")
	// 2.0 also carries the metadata of the series Prometheus makes itself
	// (up, scrape_*), which its own /metadata, built from scrape targets,
	// does not list: Orrery may know more, never less or different.
	synthetic := map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
		"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true}
	var want, got map[string][]metadataEntry
	require.Eventually(t, func() bool {
		_, want, _ = metadataOf(t, prom+"/api/v1/metadata")
		_, got, _ = metadataOf(t, o.url("/prometheus/api/v1/metadata"))
		return len(want) > 50 && len(got) >= len(want)
	}, 30*time.Second, 500*time.Millisecond, "metadata arrives inside remote write 2.0 series")
	for name, entries := range got {
		if synthetic[name] {
			continue
		}
		require.Equal(t, want[name], entries, name)
	}
	require.Len(t, got, len(want)+len(synthetic))
	_, body := rawGet(t, o.url("/prometheus/api/v1/query?query=up"))
	require.Contains(t, body, `"job":"prometheus"`)
	require.Zero(t, labelledMetric(t, o, "orrery_distributor_discarded_samples_total", ""))
	require.Positive(t, metricValue(t, o, `orrery_distributor_received_samples_total{tenant="anonymous"}`))
}
