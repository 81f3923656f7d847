package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// recorder is a fake receiver that checks per-series timestamp order, the
// property the runner's batch ownership exists to guarantee.
type recorder struct {
	mu       sync.Mutex
	last     map[string]int64
	samples  int
	outOfOrd int
	reject   func(n int) int // status for the n-th request, 0 to accept
	requests int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.requests++
	if rec.reject != nil {
		if code := rec.reject(rec.requests); code != 0 {
			http.Error(w, "rejected for the test", code)
			return
		}
	}
	for _, ts := range req.Timeseries {
		key := ts.String()[:strings.Index(ts.String(), "samples")]
		for _, s := range ts.Samples {
			if prev, ok := rec.last[key]; ok && s.Timestamp <= prev {
				rec.outOfOrd++
			}
			rec.last[key] = s.Timestamp
			rec.samples++
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestBenchAgainstFakeReceiver(t *testing.T) {
	tests := []struct {
		name        string
		cfg         func(*config)
		reject      func(n int) int
		wantRounds  int
		wantStatus  map[string]int
		wantSamples int64 // 0: not known in advance
	}{
		{
			name:       "bounded by max rounds, part pregenerated",
			cfg:        func(c *config) { c.maxRounds = 6; c.pregenMiB = 1 },
			wantRounds: 6, wantStatus: map[string]int{"2xx": 6 * 5},
		},
		{
			name: "rejections are counted, not retried",
			cfg:  func(c *config) { c.maxRounds = 2 },
			reject: func(n int) int {
				if n%5 == 0 {
					return http.StatusServiceUnavailable
				}
				return 0
			},
			// Which two requests fail depends on scheduling, so the
			// accepted samples are checked against the receiver only.
			wantRounds: 2, wantStatus: map[string]int{"2xx": 8, "503": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{last: map[string]int64{}, reject: tt.reject}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			cfg, err := parseFlags([]string{"-url", srv.URL, "-series", "450", "-batch", "100",
				"-concurrency", "3", "-duration", "20s", "-pid", "0"}, testWriter{t})
			require.NoError(t, err)
			tt.cfg(&cfg)
			s, err := bench(context.Background(), cfg, testWriter{t})
			require.NoError(t, err)
			require.Equal(t, tt.wantRounds, s.Rounds)
			require.Equal(t, tt.wantStatus, s.Status)
			if tt.wantSamples != 0 {
				require.Equal(t, tt.wantSamples, s.SamplesAccepted)
			}
			require.Equal(t, rec.samples, int(s.SamplesAccepted))
			require.Zero(t, rec.outOfOrd)
			require.Less(t, s.ElapsedSeconds, 20.0)
			var out strings.Builder
			s.writeText(&out)
			require.Contains(t, out.String(), "samples/s")
		})
	}
}

func TestBenchStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg, err := parseFlags([]string{"-url", srv.URL, "-series", "1000", "-batch", "500",
		"-duration", "300ms", "-rate", "20000", "-pregen-mib", "1"}, testWriter{t})
	require.NoError(t, err)
	start := time.Now()
	s, err := bench(context.Background(), cfg, testWriter{t})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	// 20k samples/s for 0.3 s is about 6000 samples; pacing allows one
	// request per worker of slack.
	require.InDelta(t, 6000, float64(s.SamplesAccepted), 2000)
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tt := range tests {
		require.Equal(t, tt.want, percentile(d, tt.q))
	}
	require.Zero(t, percentile(nil, 0.5))
}
