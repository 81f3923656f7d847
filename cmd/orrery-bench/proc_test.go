package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr string
	}{
		{
			name: "plain",
			stat: "1234 (prometheus) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 10 5 20 0 12 0 100 1000 200",
			want: 3.15, // (250+50+10+5) ticks
		},
		{
			name: "command with spaces and parens",
			stat: "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 100 100 0 0 20 0 1 0 1 1 1",
			want: 2,
		},
		{name: "no command", stat: "garbage", wantErr: "malformed"},
		{name: "short", stat: "1 (x) S 1 2 3", wantErr: "short"},
		{name: "not a number", stat: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 1 1 1 20", wantErr: "field 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tt.want, got, 1e-9)
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tprometheus\nVmPeak:\t 9999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t12\n"
	rss, hwm, err := parseStatusMemory([]byte(status))
	require.NoError(t, err)
	require.Equal(t, int64(1024<<10), rss)
	require.Equal(t, int64(2048<<10), hwm)
	_, _, err = parseStatusMemory([]byte("Name:\tzombie\n"))
	require.ErrorContains(t, err, "missing")
}

func TestReadProcSelf(t *testing.T) {
	// Burn a little CPU so the reading is not trivially zero.
	deadline := time.Now().Add(30 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	s, err := readProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, s.rssBytes)
	require.GreaterOrEqual(t, s.hwmBytes, s.rssBytes)
	require.Positive(t, s.cpuSeconds+selfCPU())
	_, err = readProc(-5)
	require.ErrorContains(t, err, "pid -5")
}
