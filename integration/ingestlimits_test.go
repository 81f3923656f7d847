//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// documentedLimit is one row of docs/tenancy.md's limits table.
type documentedLimit struct {
	status int
	errID  string
}

// documentedLimits reads the limits table of docs/tenancy.md, by the
// row's first `code` (the overrides key), so that the test holds the docs
// to what the running process does.
func documentedLimits(t *testing.T) map[string]documentedLimit {
	t.Helper()
	doc, err := os.ReadFile("../docs/tenancy.md")
	require.NoError(t, err)
	row := regexp.MustCompile("^\\| `([a-z_]+)`.*\\| (\\d{3}), `(err-orrery-[a-z-]+)`")
	out := map[string]documentedLimit{}
	for _, line := range strings.Split(string(doc), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			code, _ := strconv.Atoi(m[2])
			out[m[1]] = documentedLimit{code, m[3]}
		}
	}
	return out
}

func pushAs(t *testing.T, o *orrery, tenantID string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, o.url("/api/v1/push"), bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func writeRequest(t *testing.T, series ...prompb.TimeSeries) []byte {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func seriesAt(ms int64, kv ...string) prompb.TimeSeries {
	s := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ms, Value: 1}}}
	for k := 0; k < len(kv); k += 2 {
		s.Labels = append(s.Labels, prompb.Label{Name: kv[k], Value: kv[k+1]})
	}
	return s
}

// TestIngestLimitsAsDocumented: every write-path limit of docs/tenancy.md,
// exceeded against a running Orrery, answers the documented status code
// and error ID, and the valid series of the same request are stored.
// Rewriting the overrides file changes a limit in the running process.
func TestIngestLimitsAsDocumented(t *testing.T) {
	docs := documentedLimits(t)
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	writeOverrides := func(maxLabels int) {
		content := fmt.Sprintf(`overrides:
  lim:
    max_label_names_per_series: %d
    max_label_name_length: 20
    max_label_value_length: 40
    creation_grace_period: 1m
    past_grace_period: 1h
    accept_ha_samples: true
    ha_max_clusters: 1
  slow:
    ingestion_rate: 1
    ingestion_burst_size: 5
`, maxLabels)
		tmp := overrides + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, overrides))
	}
	writeOverrides(4)
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides, "-runtime-config.reload-period=100ms",
		"-distributor.max-recv-msg-size=1048576")

	now := time.Now().UnixMilli()
	cases := []struct {
		limit, tenant string
		bad           prompb.TimeSeries
		body          []byte // instead of bad plus a valid series
	}{
		{limit: "max_label_names_per_series", tenant: "lim", bad: seriesAt(now, "__name__", "m", "a", "1", "b", "2", "c", "3", "d", "4")},
		{limit: "max_label_name_length", tenant: "lim", bad: seriesAt(now, "__name__", "m", strings.Repeat("n", 21), "1")},
		{limit: "max_label_value_length", tenant: "lim", bad: seriesAt(now, "__name__", "m", "a", strings.Repeat("v", 41))},
		{limit: "creation_grace_period", tenant: "lim", bad: seriesAt(now+time.Hour.Milliseconds(), "__name__", "m")},
		{limit: "past_grace_period", tenant: "lim", bad: seriesAt(now-2*time.Hour.Milliseconds(), "__name__", "m")},
		{limit: "ingestion_rate", tenant: "slow", body: writeRequest(t,
			seriesAt(now, "__name__", "m", "i", "1"), seriesAt(now, "__name__", "m", "i", "2"), seriesAt(now, "__name__", "m", "i", "3"),
			seriesAt(now, "__name__", "m", "i", "4"), seriesAt(now, "__name__", "m", "i", "5"), seriesAt(now, "__name__", "m", "i", "6"))},
		{limit: "ha_max_clusters", tenant: "lim", body: writeRequest(t, seriesAt(now, "__name__", "m", "cluster", "second", "__replica__", "r1"))},
	}
	// The tenant's first HA cluster is accepted; the case above is its second.
	code, body := pushAs(t, o, "lim", writeRequest(t, seriesAt(now, "__name__", "m", "cluster", "first", "__replica__", "r1")))
	require.Equal(t, http.StatusNoContent, code, body)

	for _, c := range cases {
		t.Run(c.limit, func(t *testing.T) {
			doc, ok := docs[c.limit]
			require.True(t, ok, "docs/tenancy.md documents %s", c.limit)
			valid := "kept_" + c.limit
			req := c.body
			if req == nil {
				req = writeRequest(t, seriesAt(now, "__name__", valid), c.bad)
			}
			code, body := pushAs(t, o, c.tenant, req)
			require.Equal(t, doc.status, code, body)
			require.Contains(t, body, doc.errID)
			if c.body == nil {
				_, got := getAs(t, o.url("/prometheus/api/v1/query?query="+url.QueryEscape("count("+valid+")")), c.tenant)
				require.Contains(t, got, `"1"]`, "the valid series of the request is stored")
			}
		})
	}

	t.Run("request size", func(t *testing.T) {
		code, body := pushAs(t, o, "lim", bytes.Repeat([]byte{0}, 2<<20))
		require.Equal(t, http.StatusRequestEntityTooLarge, code)
		require.Contains(t, body, "err-orrery-request-too-large")
	})

	t.Run("overrides reload", func(t *testing.T) {
		req := writeRequest(t, seriesAt(now+1000, "__name__", "m", "a", "1", "b", "2", "c", "3", "d", "4"))
		code, _ := pushAs(t, o, "lim", req)
		require.Equal(t, http.StatusBadRequest, code)
		writeOverrides(10)
		require.Eventually(t, func() bool {
			code, _ := pushAs(t, o, "lim", req)
			return code == http.StatusNoContent
		}, 10*time.Second, 100*time.Millisecond, "a raised max_label_names_per_series applies without a restart")
	})
}
