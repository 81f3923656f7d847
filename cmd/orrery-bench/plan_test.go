package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMakePlan(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	base := config{series: 10_000, batch: 2000, duration: time.Minute, interval: 15 * time.Second, pregenMiB: 1}
	tests := []struct {
		name       string
		mutate     func(*config)
		roundBytes int
		want       plan
		wantErr    string
	}{
		{
			name: "flat out: budget caps the rounds", roundBytes: 1 << 16,
			want: plan{series: 10_000, batchSize: 2000, batches: 5, rounds: 16, pregen: 16,
				startMillis: now.UnixMilli() - 16*15_000, stepMillis: 15_000},
		},
		{
			name: "flat out: the ceiling caps the rounds", roundBytes: 1,
			mutate: func(c *config) { c.duration = time.Second },
			// 4M samples/s for 1 s over 10k series is 400 rounds.
			want: plan{series: 10_000, batchSize: 2000, batches: 5, rounds: 400, pregen: 400,
				startMillis: now.UnixMilli() - 400*15_000, stepMillis: 15_000},
		},
		{
			name: "rate sets the rounds", mutate: func(c *config) { c.rate = 1000 }, roundBytes: 1 << 16,
			// 1000 samples/s for 60 s over 10k series is 6 rounds.
			want: plan{series: 10_000, batchSize: 2000, batches: 5, rounds: 6, pregen: 6,
				startMillis: now.UnixMilli() - 6*15_000, stepMillis: 15_000},
		},
		{
			name: "partial last batch, explicit start, max rounds", roundBytes: 1,
			mutate: func(c *config) { c.batch = 3000; c.start = "2023-11-14T22:13:20Z"; c.maxRounds = 3 },
			want: plan{series: 10_000, batchSize: 3000, batches: 4, rounds: 3, pregen: 3,
				startMillis: 1_700_000_000_000, stepMillis: 15_000},
		},
		{
			name: "no pregeneration", mutate: func(c *config) { c.pregenMiB = 0; c.rate = 1e6 }, roundBytes: 1,
			want: plan{series: 10_000, batchSize: 2000, batches: 5, rounds: 6000, pregen: 0,
				startMillis: now.UnixMilli() - 6000*15_000, stepMillis: 15_000},
		},
		{name: "bad start", mutate: func(c *config) { c.start = "yesterday" }, wantErr: "-start"},
		{name: "sub-millisecond interval", mutate: func(c *config) { c.interval = time.Microsecond }, wantErr: "interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			got, err := makePlan(cfg, now, tt.roundBytes)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestPlanBatchRange(t *testing.T) {
	p := plan{series: 10, batchSize: 4, batches: 3}
	var got [][2]int
	for b := 0; b < p.batches; b++ {
		from, to := p.batchRange(b)
		got = append(got, [2]int{from, to})
	}
	require.Equal(t, [][2]int{{0, 4}, {4, 8}, {8, 10}}, got)
}

func TestParseFlagsValidates(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-url", "127.0.0.1:9009/api/v1/push"}, "absolute http(s) URL"},
		{[]string{"-series", "0"}, "must be positive"},
		{[]string{"-duration", "0s"}, "must be positive"},
		{[]string{"-rate", "-1"}, "must not be negative"},
		{[]string{"stray"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, testWriter{t})
		if tt.wantErr == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tt.wantErr, "%v", tt.args)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
