package limits

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
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

	replaceFile(t, file, "overrides:\n  team-a:\n    ingestion_rate: 7\n  team-b:\n    max_label_names_per_series: 3\n")
	require.Eventually(t, func() bool { return o.For("team-a").IngestionRate == 7 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 3, o.For("team-b").MaxLabelNamesPerSeries)

	// A broken file keeps the limits in force.
	replaceFile(t, file, "overrides: [not, a, map")
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 7.0, o.For("team-a").IngestionRate)
}

// replaceFile swaps content in with a rename, as a Kubernetes ConfigMap
// update does: a reader sees the old file or the new one, never a
// truncated one in between.
func replaceFile(t *testing.T, file, content string) {
	t.Helper()
	tmp := file + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, file))
}

func TestOverridesRejectsUnknownKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    ingestion_rat: 5\n"), 0o644))
	_, err := NewOverrides(Config{OverridesFile: file}, Limits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "ingestion_rat")
}

func TestOverridesRejectsBadFileAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    ingestion_rate: -1\n"), 0o644))
	_, err := NewOverrides(Config{OverridesFile: file}, Limits{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, `tenant "a"`)
}

// A tenant's `otlp` block is Prometheus's: the keys it sets change, the
// others keep Prometheus's defaults, and a misspelt key or an unknown
// strategy fails the load.
func TestOverridesOTLP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    otlp:\n      translation_strategy: NoTranslation\n      promote_resource_attributes: [k8s.pod.name]\n"), 0o644))
	defaults := Limits{OTLP: config.DefaultOTLPConfig}
	o, err := NewOverrides(Config{OverridesFile: file}, defaults, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	a := o.For("a").OTLP
	require.Equal(t, otlptranslator.NoTranslation, a.TranslationStrategy)
	require.Equal(t, []string{"k8s.pod.name"}, a.PromoteResourceAttributes)
	require.True(t, a.LabelNameUnderscoreSanitization, "Prometheus's default for the keys not set")
	require.Equal(t, config.DefaultOTLPConfig, o.For("b").OTLP)

	for _, bad := range []string{
		"overrides:\n  a:\n    otlp:\n      translation_strategi: NoTranslation\n",
		"overrides:\n  a:\n    otlp:\n      translation_strategy: Sideways\n",
	} {
		require.NoError(t, os.WriteFile(file, []byte(bad), 0o644))
		_, err := NewOverrides(Config{OverridesFile: file}, defaults, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		require.Error(t, err, bad)
	}
}
