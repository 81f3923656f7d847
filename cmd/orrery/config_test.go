package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "orrery.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
target: ingester
data_dir: /from/file
ingester:
  flush_period: 30s
querier:
  timeout: 1m
tenant_federation:
  enabled: true
`), 0o644))
	cfg, flags, err := loadConfig([]string{"-config.file=" + file, "-data.dir=/from/flag"})
	require.NoError(t, err)
	require.Equal(t, "ingester", cfg.Target, "file overrides default")
	require.Equal(t, "/from/flag", cfg.DataDir, "flag overrides file")
	require.Equal(t, 30*time.Second, cfg.Ingester.FlushPeriod)
	require.Equal(t, time.Minute, cfg.Querier.Timeout)
	require.True(t, cfg.TenantFederation.Enabled)
	require.Equal(t, "true", flags["tenant-federation.enabled"])
	require.Equal(t, 2*time.Hour, cfg.Ingester.MaxChunkAge, "untouched default")
	require.Equal(t, ":9009", flags["http.listen-address"])
}

func TestConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(file, []byte("no_such_field: 1\n"), 0o644))
	for _, args := range [][]string{
		{"-config.file=" + file},
		{"-target=nonsense"},
		{"-ingester.max-chunk-samples=0"},
		{"-validation.name-validation-scheme=klingon"},
	} {
		_, _, err := loadConfig(args)
		require.Error(t, err, args)
	}
}

func TestAdvertisedAddr(t *testing.T) {
	for _, c := range []struct{ listen, instance, want string }{
		{":9095", "", "127.0.0.1:9095"},
		{"10.1.2.3:9095", "", "10.1.2.3:9095"},
		{":9095", "pod:1234", "pod:1234"},
	} {
		cfg := &Config{GRPCListenAddress: c.listen, InstanceAddr: c.instance}
		got, err := cfg.advertisedAddr()
		require.NoError(t, err)
		require.Equal(t, c.want, got)
	}
}
