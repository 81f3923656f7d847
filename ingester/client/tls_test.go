package client

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not PEM"), 0o600))

	opts, err := (&TLSConfig{}).DialOptions()
	require.NoError(t, err)
	require.Empty(t, opts, "TLS off: the pool's plaintext default")
	_, err = (&TLSConfig{Enabled: true, CAPath: junk}).DialOptions()
	require.ErrorContains(t, err, "holds no PEM certificate", "a CA file without a certificate trusts nothing: refuse it")
	_, err = (&TLSConfig{Enabled: true, CertPath: junk, KeyPath: junk}).DialOptions()
	require.ErrorContains(t, err, "-ingester.client.tls-cert-path")
	opts, err = (&TLSConfig{Enabled: true}).DialOptions()
	require.NoError(t, err)
	require.Len(t, opts, 1, "TLS with the system's roots")

	require.NoError(t, (&TLSConfig{Enabled: true, CertPath: "c", KeyPath: "k"}).Validate())
	require.Error(t, (&TLSConfig{Enabled: true, CertPath: "c"}).Validate())
	require.Error(t, (&TLSConfig{ServerName: "x"}).Validate())
}
