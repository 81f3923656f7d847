package limits

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestOverridesReloadWithoutRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  team-a:\n    ingestion_rate: 5\n"), 0o644))
	defaults := Limits{IngestionRate: 100, MaxLabelNamesPerSeries: 30}
	o, err := NewOverrides(Config{OverridesFile: file, ReloadInterval: 10 * time.Millisecond}, defaults, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, o.Start(context.Background()))
	defer func() { require.NoError(t, o.Stop(context.Background())) }()

	require.Equal(t, 5.0, o.For("team-a").IngestionRate)
	require.Equal(t, 30, o.For("team-a").MaxLabelNamesPerSeries, "unset fields keep the default")
	require.Equal(t, 100.0, o.For("team-b").IngestionRate)

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  team-a:\n    ingestion_rate: 7\n  team-b:\n    max_label_names_per_series: 3\n"), 0o644))
	require.Eventually(t, func() bool { return o.For("team-a").IngestionRate == 7 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 3, o.For("team-b").MaxLabelNamesPerSeries)

	// A broken file keeps the limits in force.
	require.NoError(t, os.WriteFile(file, []byte("overrides: [not, a, map"), 0o644))
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 7.0, o.For("team-a").IngestionRate)
}

func TestOverridesRejectsBadFileAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    ingestion_rate: -1\n"), 0o644))
	_, err := NewOverrides(Config{OverridesFile: file}, Limits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, `tenant "a"`)
}
