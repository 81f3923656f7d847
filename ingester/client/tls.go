package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSConfig secures the connections to ingesters: the server's certificate
// is verified against CAPath, and the client presents CertPath and KeyPath
// to servers that require client certificates (-grpc.tls-client-ca-path).
// The names follow dskit's tls.ClientConfig, as Cortex and Mimir use it.
// Files are read once, at start-up: a rotated certificate takes a restart.
type TLSConfig struct {
	// Enabled dials with TLS. False dials in plaintext and ignores the rest.
	Enabled bool `yaml:"tls_enabled"`
	// CertPath and KeyPath are this client's certificate and key, PEM.
	// Empty: no client certificate is presented.
	CertPath string `yaml:"tls_cert_path"`
	KeyPath  string `yaml:"tls_key_path"`
	// CAPath is a PEM bundle of the CAs that sign the servers'
	// certificates. Empty: the system's roots.
	CAPath string `yaml:"tls_ca_path"`
	// ServerName is the name the servers' certificates must carry. Empty:
	// the host of the address dialed (an IP then needs an IP SAN).
	ServerName string `yaml:"tls_server_name"`
}

// RegisterFlags registers the -ingester.client.tls-* flags on fs.
func (c *TLSConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "ingester.client.tls-enabled", false, "Dial ingesters' gRPC with TLS.")
	fs.StringVar(&c.CertPath, "ingester.client.tls-cert-path", "", "PEM client certificate presented to ingesters (needed when they set -grpc.tls-client-ca-path).")
	fs.StringVar(&c.KeyPath, "ingester.client.tls-key-path", "", "PEM key of -ingester.client.tls-cert-path.")
	fs.StringVar(&c.CAPath, "ingester.client.tls-ca-path", "", "PEM CA bundle that verifies ingesters' certificates; empty uses the system's roots.")
	fs.StringVar(&c.ServerName, "ingester.client.tls-server-name", "", "Name ingesters' certificates must carry; empty uses the host dialed.")
}

// Validate checks that the settings belong together.
func (c *TLSConfig) Validate() error {
	if !c.Enabled {
		if c.CertPath != "" || c.KeyPath != "" || c.CAPath != "" || c.ServerName != "" {
			return errors.New("-ingester.client.tls-* flags need -ingester.client.tls-enabled=true")
		}
		return nil
	}
	if (c.CertPath == "") != (c.KeyPath == "") {
		return errors.New("-ingester.client.tls-cert-path and -ingester.client.tls-key-path go together")
	}
	return nil
}

// DialOptions returns the options that make a Pool dial as configured:
// none when TLS is off (the Pool dials in plaintext).
func (c *TLSConfig) DialOptions() ([]grpc.DialOption, error) {
	if !c.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CertPath != "" {
		cert, err := tls.LoadX509KeyPair(c.CertPath, c.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("ingester client: load -ingester.client.tls-cert-path: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.CAPath != "" {
		pool, err := LoadCertPool(c.CAPath)
		if err != nil {
			return nil, fmt.Errorf("ingester client: -ingester.client.tls-ca-path: %w", err)
		}
		cfg.RootCAs = pool
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, nil
}

// LoadCertPool reads a PEM bundle of CA certificates; a file without one
// is an error, not an empty pool that would trust nothing.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}
