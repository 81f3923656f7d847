//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestTimeEdges is RELIABILITY.md's scenario 4: samples at the future and
// past limits, and 1 ms beyond. The limits are inclusive against the
// distributor's clock when it handles the request (docs/tenancy.md), which
// the test cannot read; so each request carries one series per millisecond
// across the moment the request may be handled, and the test finds the one
// cut that the stored series imply: every sample up to the limit stored,
// every sample 1 ms past it refused with the documented 4xx, the cut within
// the time the request was in flight, and samples on both sides of it sent.
func TestTimeEdges(t *testing.T) {
	docs := documentedLimits(t)
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	replaceFile(t, overrides, "overrides:\n  edges:\n    creation_grace_period: 10m\n    past_grace_period: 1h\n")
	o := startOrrery(t, t.TempDir(), "-runtime-config.file="+overrides)
	const grace, past = 10 * time.Minute, time.Hour
	// Offsets in ms from the client's clock before sending; the cut lies
	// between 0 and the request's round trip.
	const lo, hi = -5, 5000

	for _, c := range []struct {
		limit, name string
		at          func(t0 int64, off int) int64
		storedBelow bool // stored offsets are those up to the cut
	}{
		{"creation_grace_period", "edge_future", func(t0 int64, off int) int64 { return t0 + grace.Milliseconds() + int64(off) }, true},
		{"past_grace_period", "edge_past", func(t0 int64, off int) int64 { return t0 - past.Milliseconds() + int64(off) }, false},
	} {
		t.Run(c.limit, func(t *testing.T) {
			doc, ok := docs[c.limit]
			require.True(t, ok, "docs/tenancy.md documents %s", c.limit)
			t0 := time.Now().UnixMilli()
			var series []prompb.TimeSeries
			for off := lo; off <= hi; off++ {
				series = append(series, seriesAt(c.at(t0, off), "__name__", c.name, "off", strconv.Itoa(off)))
			}
			code, body := pushAs(t, o, "edges", writeRequest(t, series...))
			rtt := time.Now().UnixMilli() - t0
			require.Equal(t, doc.status, code, body)
			require.Contains(t, body, doc.errID)

			stored := storedOffsets(t, o, c.name, c.at(t0, lo)-1000, c.at(t0, hi)+1000)
			// The cut: the last stored offset (future) or the first (past).
			cut := hi + 1
			for off := lo; off <= hi; off++ {
				if stored[off] {
					cut = off
					if !c.storedBelow {
						break
					}
				}
			}
			t.Logf("%s: cut %d ms after the client's clock; request in flight %d ms", c.limit, cut, rtt)
			require.GreaterOrEqual(t, cut, 0, "a sample within the limit by the client's clock before sending was refused")
			require.LessOrEqual(t, int64(cut), rtt, "a sample past the limit by the clock after the answer was stored")
			require.Less(t, cut, hi, "the request's handling must fall within the offsets sent")
			for off := lo; off <= hi; off++ {
				want := off <= cut
				if !c.storedBelow {
					want = off >= cut
				}
				require.Equal(t, want, stored[off], "offset %d ms (cut at %d): exactly the samples within the limit are stored", off, cut)
			}
			refused := hi - lo + 1 - len(stored)
			require.Contains(t, body, fmt.Sprintf("; %d samples discarded, %d stored", refused, len(stored)))
			// Both sides of the edge, 1 ms apart, were in the request.
			if c.storedBelow {
				require.True(t, stored[cut] && !stored[cut+1])
			} else {
				require.True(t, stored[cut] && !stored[cut-1])
			}
		})
	}
}

// storedOffsets returns the off labels of the series named name with
// samples between from and to (ms).
func storedOffsets(t *testing.T, o *orrery, name string, from, to int64) map[int]bool {
	t.Helper()
	params := url.Values{"match[]": {name}, "start": {strconv.FormatInt(from/1000, 10)}, "end": {strconv.FormatInt(to/1000+1, 10)}}
	code, body := getAs(t, o.url("/prometheus/api/v1/series?"+params.Encode()), "edges")
	require.Equal(t, http.StatusOK, code, body)
	var resp struct {
		Data []map[string]string `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	out := map[int]bool{}
	for _, s := range resp.Data {
		off, err := strconv.Atoi(s["off"])
		require.NoError(t, err)
		out[off] = true
	}
	return out
}
