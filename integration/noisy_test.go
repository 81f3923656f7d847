//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestNoisyNeighbour is RELIABILITY.md's scenario 13: one tenant far over
// its limits (rate, series, label limits) is refused with 429 and 400,
// while another keeps every write and its query latency; and neither ever
// sees the other's data through any read API.
func TestNoisyNeighbour(t *testing.T) {
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	replaceFile(t, overrides, `overrides:
  noisy:
    ingestion_rate: 2000
    ingestion_burst_size: 4000
    max_global_series_per_user: 300
    max_label_names_per_series: 5
`)
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides)
	now := time.Now()

	// Each tenant's own data, with a metric name both use and one of its own.
	pushSeries(t, o, "quiet", "shared_name", 20, now.Add(-5*time.Minute), now, "owner", "quiet")
	pushSeries(t, o, "quiet", "quiet_only", 5, now.Add(-5*time.Minute), now, "owner", "quiet")
	pushSeries(t, o, "noisy", "shared_name", 20, now.Add(-5*time.Minute), now, "owner", "noisy")
	pushSeries(t, o, "noisy", "noisy_only", 5, now.Add(-5*time.Minute), now, "owner", "noisy")

	latency := func(d time.Duration) []time.Duration {
		var out []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); {
			start := time.Now()
			code, r := queryAs(t, o, "quiet", "/query", url.Values{"query": {"count(shared_name)"}})
			out = append(out, time.Since(start))
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, string(r.Data), `"20"]`, "the quiet tenant's answer is exact")
			time.Sleep(50 * time.Millisecond)
		}
		slices.Sort(out)
		return out
	}
	before := latency(2 * time.Second)

	// The noisy tenant floods: new series far past its series limit, past
	// its rate, and series with too many labels, from four senders.
	quiet := startQuietWriter(t, o, "quiet")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var series []prompb.TimeSeries
				ms := time.Now().UnixMilli()
				for i := 0; i < 1000; i++ {
					series = append(series, seriesAt(ms, "__name__", "flood", "w", strconv.Itoa(w), "k", strconv.Itoa(k), "i", strconv.Itoa(i)))
				}
				series = append(series, seriesAt(ms, "__name__", "flood_wide", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"))
				req, _ := http.NewRequest(http.MethodPost, o.url("/api/v1/push"), bytes.NewReader(writeRequest(t, series...)))
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("X-Scope-OrgID", "noisy")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	during := latency(6 * time.Second)
	close(stop)
	wg.Wait()
	quiet.finish(t)

	p := func(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	t.Logf("noisy tenant's answers: %v", codes)
	t.Logf("quiet tenant's query latency: alone p50 %s max %s; beside the flood p50 %s p90 %s max %s",
		p(before, .5), p(before, 1), p(during, .5), p(during, .9), p(during, 1))
	require.Greater(t, codes[http.StatusTooManyRequests], 0, "the noisy tenant was rate limited")
	require.Greater(t, codes[http.StatusBadRequest], 0, "the noisy tenant was refused by its series and label limits")
	for code := range codes {
		require.Contains(t, []int{http.StatusTooManyRequests, http.StatusBadRequest}, code, "the noisy tenant gets 429 or 400, never a 5xx")
	}
	// Two cores are shared by everything under test: the quiet tenant's
	// latency may grow with the CPU the flood takes, but must stay that of a
	// working system, not of a queue behind the flood.
	require.Less(t, p(during, .9), max(10*p(before, .5), 500*time.Millisecond), "the quiet tenant's queries stay fast")
	require.Less(t, p(during, 1), 5*time.Second)

	// Neither tenant sees the other's data, through any read API.
	for _, c := range []struct{ tenant, other string }{{"quiet", "noisy"}, {"noisy", "quiet"}} {
		t.Run(c.tenant, func(t *testing.T) { requireOnlyOwnData(t, o, c.tenant, c.other) })
	}
}

// requireOnlyOwnData reads everything tenant can read, through every read
// API, and requires that nothing of other's shows.
func requireOnlyOwnData(t *testing.T, o *orrery, tenant, other string) {
	t.Helper()
	start := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	end := strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)
	all := `{__name__=~".+"}`
	reads := map[string]string{
		"query":        "/prometheus/api/v1/query?" + url.Values{"query": {all}}.Encode(),
		"query_range":  "/prometheus/api/v1/query_range?" + url.Values{"query": {all}, "start": {start}, "end": {end}, "step": {"60"}}.Encode(),
		"series":       "/prometheus/api/v1/series?" + url.Values{"match[]": {all}, "start": {start}, "end": {end}}.Encode(),
		"labels":       "/prometheus/api/v1/labels?" + url.Values{"start": {start}, "end": {end}}.Encode(),
		"owner values": "/prometheus/api/v1/label/owner/values?" + url.Values{"start": {start}, "end": {end}}.Encode(),
		"name values":  "/prometheus/api/v1/label/__name__/values?" + url.Values{"start": {start}, "end": {end}}.Encode(),
		"metadata":     "/prometheus/api/v1/metadata",
		"federate":     "/prometheus/federate?" + url.Values{"match[]": {all}}.Encode(),
	}
	for name, path := range reads {
		code, body := getAs(t, o.url(path), tenant)
		require.Equal(t, http.StatusOK, code, "%s: %s", name, body)
		require.NotContains(t, body, other, "%s as %s shows %s's data", name, tenant, other)
		require.NotContains(t, body, other+"_only", name)
	}
	// The tenant's own data is there, so the reads above were not empty.
	code, body := getAs(t, o.url(reads["owner values"]), tenant)
	require.Equal(t, http.StatusOK, code)
	var values struct{ Data []string }
	require.NoError(t, json.Unmarshal([]byte(body), &values))
	require.Equal(t, []string{tenant}, values.Data)
	_, body = getAs(t, o.url(reads["name values"]), tenant)
	require.Contains(t, body, tenant+"_only")
	require.True(t, strings.Contains(body, "shared_name"), fmt.Sprintf("%s reads its own series: %s", tenant, body))
}
