package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

func TestSecurityConfig(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string // "" when valid
	}{
		{nil, ""},
		{[]string{"-grpc.tls-cert-path=c", "-grpc.tls-key-path=k", "-ingester.client.tls-enabled"}, ""},
		{[]string{"-target=distributor", "-grpc.tls-cert-path=c", "-grpc.tls-key-path=k"}, ""},
		{[]string{"-grpc.tls-cert-path=c"}, "go together"},
		{[]string{"-grpc.tls-client-ca-path=ca"}, "needs -grpc.tls-cert-path"},
		{[]string{"-grpc.tls-cert-path=c", "-grpc.tls-key-path=k"}, "needs -ingester.client.tls-enabled"},
		{[]string{"-ingester.client.tls-ca-path=ca"}, "need -ingester.client.tls-enabled"},
		{[]string{"-ingester.client.tls-enabled", "-ingester.client.tls-key-path=k"}, "go together"},
	} {
		_, _, err := loadConfig(append([]string{"-data.dir=" + t.TempDir()}, c.args...))
		if c.err == "" {
			require.NoError(t, err, c.args)
		} else {
			require.ErrorContains(t, err, c.err, c.args)
		}
	}
}

// A TLS file that cannot be used stops start-up with the flag's name,
// rather than serving plaintext or trusting nothing.
func TestTLSFilesFailLoudly(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not PEM"), 0o600))
	_, err := (&grpcTLSConfig{CertPath: junk, KeyPath: junk}).serverOption()
	require.ErrorContains(t, err, "-grpc.tls-cert-path")
	_, err = (&grpcTLSConfig{CertPath: filepath.Join(dir, "missing"), KeyPath: junk}).serverOption()
	require.Error(t, err)
	opt, err := (&grpcTLSConfig{}).serverOption()
	require.NoError(t, err)
	require.Equal(t, grpc.EmptyServerOption{}, opt, "no certificate: plaintext")
}

func TestOpenDoorsAreNamed(t *testing.T) {
	cfg := &Config{Target: "all", AuthEnabled: true}
	require.Len(t, cfg.openDoors(), 2, "plaintext gRPC and unkeyed gossip")
	cfg.Security.GRPCTLS = grpcTLSConfig{CertPath: "c", KeyPath: "k"}
	require.Len(t, cfg.openDoors(), 2, "TLS without client certificates still lets anyone in")
	cfg.Security.GRPCTLS.ClientCAPath = "ca"
	cfg.Ring.KeyFile = "key"
	require.Empty(t, cfg.openDoors())
	cfg = &Config{Target: "ingester"}
	require.Empty(t, cfg.openDoors(), "without -auth.enabled nothing was asked for")
	cfg = &Config{Target: "query-frontend", AuthEnabled: true, Ring: cfg.Ring}
	cfg.Ring.KeyFile = "key"
	require.Len(t, cfg.openDoors(), 1, "anyone could pull a frontend's queries")
	require.Contains(t, cfg.openDoors()[0], "query frontend")
}
