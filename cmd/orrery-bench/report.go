package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// summary is the result of a run; its JSON form is what scripts consume.
type summary struct {
	URL                  string            `json:"url"`
	Series               int               `json:"series"`
	Batch                int               `json:"batch"`
	Concurrency          int               `json:"concurrency"`
	RateLimit            float64           `json:"rate_limit"`
	ElapsedSeconds       float64           `json:"elapsed_s"`
	Rounds               int               `json:"rounds"`
	RequestsOK           int               `json:"requests_ok"`
	RequestsFailed       int               `json:"requests_failed"`
	Status               map[string]int    `json:"status"`
	Errors               map[string]string `json:"errors,omitempty"`
	SamplesAccepted      int64             `json:"samples_accepted"`
	SamplesPerSecond     float64           `json:"samples_per_s"`
	LatencyP50Ms         float64           `json:"latency_p50_ms"`
	LatencyP99Ms         float64           `json:"latency_p99_ms"`
	LatencyMaxMs         float64           `json:"latency_max_ms"`
	DataStartMillis      int64             `json:"data_start_ms"`
	DataEndMillis        int64             `json:"data_end_ms"`
	PregeneratedRounds   int               `json:"pregenerated_rounds"`
	OnTheFlyRequests     int               `json:"on_the_fly_requests"`
	ToolCPUSeconds       float64           `json:"tool_cpu_s"`
	PID                  int               `json:"pid,omitempty"`
	TargetCPUSeconds     float64           `json:"target_cpu_s,omitempty"`
	CPUSecondsPerMillion float64           `json:"cpu_s_per_1m_samples,omitempty"`
	RSSStartMiB          float64           `json:"rss_start_mib,omitempty"`
	RSSEndMiB            float64           `json:"rss_end_mib,omitempty"`
	RSSPeakMiB           float64           `json:"rss_peak_mib,omitempty"`
	RSSBytesPerSeries    float64           `json:"rss_bytes_per_series,omitempty"`
	TargetError          string            `json:"target_error,omitempty"`
}

// percentile returns the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fillOutcome copies a merged tally into s.
func (s *summary) fillOutcome(t *tally, elapsed time.Duration, p plan) {
	slices.Sort(t.latencies)
	s.ElapsedSeconds = elapsed.Seconds()
	s.Rounds = t.lastRound + 1
	s.RequestsOK = t.ok
	s.RequestsFailed = len(t.latencies) - t.ok
	s.SamplesAccepted = t.samples
	if elapsed > 0 {
		s.SamplesPerSecond = float64(t.samples) / elapsed.Seconds()
	}
	s.LatencyP50Ms = ms(percentile(t.latencies, 0.5))
	s.LatencyP99Ms = ms(percentile(t.latencies, 0.99))
	s.LatencyMaxMs = ms(percentile(t.latencies, 1))
	s.Status = map[string]int{}
	for code, n := range t.byStatus {
		s.Status[statusName(code)] = n
	}
	for code, msg := range t.firstError {
		if s.Errors == nil {
			s.Errors = map[string]string{}
		}
		s.Errors[statusName(code)] = msg
	}
	s.DataStartMillis = p.startMillis
	s.DataEndMillis = p.timestamp(max(0, s.Rounds-1))
	s.OnTheFlyRequests = t.onTheFly
}

// fillTarget adds the target's resource use between two readings.
func (s *summary) fillTarget(before, after procSample) {
	s.TargetCPUSeconds = after.cpuSeconds - before.cpuSeconds
	if s.SamplesAccepted > 0 {
		s.CPUSecondsPerMillion = s.TargetCPUSeconds / float64(s.SamplesAccepted) * 1e6
	}
	s.RSSStartMiB = float64(before.rssBytes) / (1 << 20)
	s.RSSEndMiB = float64(after.rssBytes) / (1 << 20)
	s.RSSPeakMiB = float64(after.hwmBytes) / (1 << 20)
	s.RSSBytesPerSeries = float64(after.rssBytes) / float64(s.Series)
}

// statusName labels successes "2xx", transport failures "error" and
// rejections by their HTTP code.
func statusName(code int) string {
	switch code {
	case statusOK:
		return "2xx"
	case statusTransport:
		return "error"
	}
	return strconv.Itoa(code)
}

func (s *summary) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(s)
}

func (s *summary) writeText(w io.Writer) {
	mode := "flat out"
	if s.RateLimit > 0 {
		mode = fmt.Sprintf("limited to %.0f samples/s", s.RateLimit)
	}
	fmt.Fprintf(w, "target:    %s (%d series, %d per request, %d workers, %s)\n",
		s.URL, s.Series, s.Batch, s.Concurrency, mode)
	fmt.Fprintf(w, "accepted:  %d samples in %.1fs = %.0f samples/s (%d rounds, data %s .. %s)\n",
		s.SamplesAccepted, s.ElapsedSeconds, s.SamplesPerSecond, s.Rounds,
		time.UnixMilli(s.DataStartMillis).UTC().Format(time.RFC3339),
		time.UnixMilli(s.DataEndMillis).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "requests:  ok %d, failed %d, by status %s\n", s.RequestsOK, s.RequestsFailed, formatCounts(s.Status))
	for _, code := range sortedKeys(s.Errors) {
		fmt.Fprintf(w, "  first %s: %s\n", code, s.Errors[code])
	}
	fmt.Fprintf(w, "latency:   p50 %.1fms, p99 %.1fms, max %.1fms\n", s.LatencyP50Ms, s.LatencyP99Ms, s.LatencyMaxMs)
	if s.PID != 0 && s.TargetError == "" {
		fmt.Fprintf(w, "pid %d:  CPU %.1fs = %.3f CPU-s per 1M samples; RSS %.0f MiB (start %.0f, peak %.0f) = %.0f B/series\n",
			s.PID, s.TargetCPUSeconds, s.CPUSecondsPerMillion, s.RSSEndMiB, s.RSSStartMiB, s.RSSPeakMiB, s.RSSBytesPerSeries)
	}
	if s.TargetError != "" {
		fmt.Fprintf(w, "pid %d:  not measured: %s\n", s.PID, s.TargetError)
	}
	fmt.Fprintf(w, "tool:      CPU %.1fs, %d rounds pregenerated, %d requests generated during the run\n",
		s.ToolCPUSeconds, s.PregeneratedRounds, s.OnTheFlyRequests)
}

func formatCounts(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
