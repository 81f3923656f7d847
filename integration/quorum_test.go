//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// countingWriter writes one sample per generated series per step, one second
// apart, and counts the samples acknowledged.
type countingWriter struct {
	gen       *loadgen.Generator
	client    *loadgen.Client
	start     time.Time
	step      int
	acked     int
	raw, body []byte
}

func newCountingWriter(distributor string) *countingWriter {
	return &countingWriter{
		gen:    loadgen.New(genSeed, 2),
		client: loadgen.NewClient(distributor+"/api/v1/push", "", 10*time.Second),
		start:  time.Now().Add(-10 * time.Minute).Truncate(time.Second),
	}
}

// write sends the next step and returns its error; only a 2xx counts.
func (w *countingWriter) write(t *testing.T) error {
	t.Helper()
	w.raw = w.gen.AppendRequest(w.raw[:0], 0, w.gen.Len(), w.step, w.start.Add(time.Duration(w.step)*time.Second).UnixMilli())
	w.body = loadgen.Compress(w.body[:0], w.raw)
	w.step++
	err := w.client.Send(ctxTimeout(t, 10*time.Second), w.body)
	if err == nil {
		w.acked += w.gen.Len()
	}
	return err
}

// samplesQuery selects every sample written by a countingWriter.
func samplesQuery() url.Values {
	return url.Values{"query": {`{__name__=~".+"}[1h]`}, "time": {strconv.FormatInt(time.Now().Unix(), 10)}}
}

// sampleCount counts the samples of a range vector answer.
func sampleCount(t *testing.T, resp *apiResponse) int {
	t.Helper()
	var d queryData
	require.NoError(t, json.Unmarshal(resp.Data, &d))
	var series []seriesResult
	require.NoError(t, json.Unmarshal(d.Result, &series))
	n := 0
	for _, s := range series {
		n += len(s.Values)
	}
	return n
}

// ringView is a member's /ring?format=json.
type ringView struct {
	Self         string           `json:"self"`
	OwnersDigest string           `json:"owners_digest"`
	Members      []ringViewMember `json:"members"`
}

func ringViewOf(t *testing.T, o *orrery) ringView {
	t.Helper()
	code, body := rawGet(t, o.url("/ring?format=json"))
	require.Equal(t, 200, code, body)
	var st ringView
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	return st
}

// ringViewMember is one member of a ringView.
type ringViewMember struct {
	ID        string  `json:"id"`
	State     string  `json:"state"`
	Healthy   bool    `json:"healthy"`
	Owned     float64 `json:"owned_percent"`
	Forgotten bool    `json:"forgotten"`
}

func (st ringView) byID() map[string]ringViewMember {
	out := map[string]ringViewMember{}
	for _, m := range st.Members {
		out[m.ID] = m
	}
	return out
}

// TestQuorumRF3ZonesTwoDown is RELIABILITY.md scenario 7: three ingesters
// in three zones at RF=3. With one down (kill -9) every write and read
// succeeds and reads return every acknowledged sample without a warning.
// With two down in different zones every write is a 5xx, never a 2xx
// below quorum, and every read fails. Once both are auto-forgotten (their
// tokens pass to the survivor), writes still fail, and reads answer with a
// warning naming them instead of silently leaving their data out
// (defect 5).
func TestQuorumRF3ZonesTwoDown(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	zones := map[string]string{"ing1": "za", "ing2": "zb", "ing3": "zc", "dist": "za", "quer": "zb"}
	for id, zone := range zones {
		c.extra[id] = []string{"-ring.zone-awareness-enabled=true", "-instance.zone=" + zone}
	}
	for _, id := range []string{"ing1", "ing2", "ing3", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2", "ing3")
	c.waitRing("quer", "ing1", "ing2", "ing3")
	quer := c.members["quer"].url("/prometheus")

	w := newCountingWriter(c.members["dist"].url(""))
	for range 5 {
		require.NoError(t, w.write(t))
	}

	// One down: writes and reads succeed, reads are complete.
	c.members["ing1"].kill9(t)
	for _, id := range []string{"dist", "quer"} {
		require.Eventually(t, func() bool { return !c.ring(id)["ing1"].Healthy }, 30*time.Second, 200*time.Millisecond, "%s notices", id)
	}
	for range 5 {
		require.NoError(t, w.write(t), "one zone down: every write succeeds")
	}
	resp, err := get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	require.Empty(t, resp.Warnings)
	require.Equal(t, w.acked, sampleCount(t, resp), "every acknowledged sample is read back")

	// Two down in different zones: below quorum.
	c.members["ing2"].kill9(t)
	for _, id := range []string{"dist", "quer"} {
		require.Eventually(t, func() bool { return !c.ring(id)["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond, "%s notices", id)
	}
	requireBelowQuorum := func(phase string) {
		t.Helper()
		for range 3 {
			err := w.write(t)
			var se *loadgen.StatusError
			require.True(t, errors.As(err, &se), "%s: a write below quorum must fail with a status, got %v", phase, err)
			require.GreaterOrEqual(t, se.StatusCode, 500, "%s: %v", phase, se)
		}
	}
	requireBelowQuorum("two zones down")
	resp, err = get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "error", resp.Status, "two zones down: a read fails rather than answer without them")

	// Both forgotten (10 × the 4 s heartbeat timeout): the survivor owns
	// every token, and reads say what they cannot see.
	require.Eventually(t, func() bool {
		r := ringViewOf(t, c.members["quer"]).byID()
		return r["ing1"].Forgotten && r["ing2"].Forgotten
	}, 90*time.Second, 500*time.Millisecond, "ing1 and ing2 are forgotten")
	requireBelowQuorum("two zones forgotten")
	resp, err = get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	require.Len(t, resp.Warnings, 1, "a read that may miss data says so")
	for _, id := range []string{"ing1", "ing2"} {
		require.Contains(t, resp.Warnings[0], id)
	}
	require.True(t, strings.Contains(resp.Warnings[0], "may be incomplete"), resp.Warnings[0])
	t.Logf("warning: %s", resp.Warnings[0])
	require.Positive(t, metricValue(t, c.members["quer"], fmt.Sprintf(`orrery_querier_partial_reads_total{tenant=%q}`, "anonymous")))
}

// TestForgottenIngesterReadsWarnAtRF1 is defect 5 at RF=1: an ingester
// killed with -9 makes reads fail while it is unhealthy; once it is
// auto-forgotten, writes resume on its neighbours and reads answer with a
// warning naming it, never silently without its data. Restarted on its
// data, it returns, the warning goes, and every acknowledged sample is
// read back.
func TestForgottenIngesterReadsWarnAtRF1(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	for _, id := range []string{"ing1", "ing2", "dist", "quer"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2")
	c.waitRing("quer", "ing1", "ing2")
	quer := c.members["quer"].url("/prometheus")
	w := newCountingWriter(c.members["dist"].url(""))
	for range 5 {
		require.NoError(t, w.write(t))
	}

	c.members["ing2"].kill9(t)
	require.Eventually(t, func() bool { return !c.ring("quer")["ing2"].Healthy }, 30*time.Second, 200*time.Millisecond)
	resp, err := get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "error", resp.Status, "unhealthy at RF=1: reads fail")

	require.Eventually(t, func() bool { return ringViewOf(t, c.members["quer"]).byID()["ing2"].Forgotten }, 90*time.Second, 500*time.Millisecond)
	require.Eventually(t, func() bool { return w.write(t) == nil }, 30*time.Second, 200*time.Millisecond, "writes resume once ing2 is forgotten")
	resp, err = get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	require.Len(t, resp.Warnings, 1, "forgotten at RF=1: the answer says it may miss data")
	require.Contains(t, resp.Warnings[0], "ing2")
	require.Less(t, sampleCount(t, resp), w.acked, "and it does miss ing2's data")

	c.startMember("ing2")
	c.waitRing("quer", "ing1", "ing2")
	require.NoError(t, w.write(t))
	resp, err = get(quer, "/api/v1/query", samplesQuery())
	require.NoError(t, err)
	require.Equal(t, "success", resp.Status, resp.Error)
	require.Empty(t, resp.Warnings, "ing2 is back")
	require.False(t, ringViewOf(t, c.members["quer"]).byID()["ing2"].Forgotten)
	require.Equal(t, w.acked, sampleCount(t, resp), "every acknowledged sample is read back")
}
