package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/orrery/orrery/ingester/client"
)

// grpcTLSConfig is the TLS of the ingester's gRPC server, named after
// dskit's server flags in Orrery's -component.option style. With a client
// CA every caller must present a certificate that CA signed (mutual TLS):
// only the cluster's own components can push, query or hand chunks over,
// whatever tenant they name.
type grpcTLSConfig struct {
	// CertPath and KeyPath are the server's certificate and key, PEM.
	// Empty: the server speaks plaintext.
	CertPath string `yaml:"tls_cert_path"`
	KeyPath  string `yaml:"tls_key_path"`
	// ClientCAPath is the PEM bundle of CAs whose client certificates are
	// accepted. Empty: clients are not asked for a certificate.
	ClientCAPath string `yaml:"tls_client_ca_path"`
}

func (c *grpcTLSConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.CertPath, "grpc.tls-cert-path", "", "PEM certificate of the gRPC server; empty serves plaintext.")
	fs.StringVar(&c.KeyPath, "grpc.tls-key-path", "", "PEM key of -grpc.tls-cert-path.")
	fs.StringVar(&c.ClientCAPath, "grpc.tls-client-ca-path", "", "PEM CA bundle: when set, every gRPC client must present a certificate signed by it (mutual TLS).")
}

func (c *grpcTLSConfig) validate() error {
	if (c.CertPath == "") != (c.KeyPath == "") {
		return errors.New("-grpc.tls-cert-path and -grpc.tls-key-path go together")
	}
	if c.ClientCAPath != "" && c.CertPath == "" {
		return errors.New("-grpc.tls-client-ca-path needs -grpc.tls-cert-path: client certificates are checked only over TLS")
	}
	return nil
}

// serverOption returns the gRPC server option for this TLS: an empty one
// for plaintext. Files are read once; a rotated certificate takes a restart.
func (c *grpcTLSConfig) serverOption() (grpc.ServerOption, error) {
	if c.CertPath == "" {
		return grpc.EmptyServerOption{}, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertPath, c.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("grpc server: load -grpc.tls-cert-path: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.ClientCAPath != "" {
		pool, err := client.LoadCertPool(c.ClientCAPath)
		if err != nil {
			return nil, fmt.Errorf("grpc server: -grpc.tls-client-ca-path: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}
