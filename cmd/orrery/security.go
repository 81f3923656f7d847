package main

import (
	"errors"
	"flag"

	"github.com/orrery/orrery/frontend/queue"
	"github.com/orrery/orrery/ingester/client"
)

// securityConfig closes the doors between a process and whoever can reach
// its ports: the admin credential, pprof, and TLS on gRPC. Gossip
// encryption is the ring's (-memberlist.key-file). docs/operations.md,
// "Securing a cluster", says how they fit together.
type securityConfig struct {
	// AdminTokensFile names the operators' credentials (docs/tenancy.md).
	// Empty: admin endpoints are open without -auth.enabled and closed with it.
	AdminTokensFile string `yaml:"auth_admin_tokens_file"`
	// PprofEnabled serves /debug/pprof, behind the admin credential when
	// there is one or -auth.enabled is set.
	PprofEnabled bool `yaml:"http_pprof_enabled"`
	// GRPCTLS secures the gRPC server of an ingester or query frontend.
	GRPCTLS grpcTLSConfig `yaml:"grpc_tls"`
	// IngesterClient secures the connections to ingesters, and a
	// querier's to query frontends.
	IngesterClient client.TLSConfig `yaml:"ingester_client"`
}

func (c *securityConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AdminTokensFile, "auth.admin-tokens-file", "", "YAML file of admin credentials (docs/tenancy.md) that open POST /ingester/shutdown and /debug/pprof; with -auth.enabled and no such file they are closed.")
	fs.BoolVar(&c.PprofEnabled, "http.pprof-enabled", false, "Serve /debug/pprof (admin-only when admin endpoints need a credential).")
	c.GRPCTLS.registerFlags(fs)
	c.IngesterClient.RegisterFlags(fs)
}

// validate checks the settings; runsIngester is whether this process both
// serves gRPC and dials other ingesters (handover).
func (c *securityConfig) validate(runsIngester bool) error {
	errs := []error{c.GRPCTLS.validate(), c.IngesterClient.Validate()}
	// An ingester hands its series over to other ingesters, which serve as
	// it does: serving TLS and dialing plaintext would fail every handover.
	if runsIngester && c.GRPCTLS.CertPath != "" && !c.IngesterClient.Enabled {
		errs = append(errs, errors.New("-grpc.tls-cert-path needs -ingester.client.tls-enabled on an ingester: it dials other ingesters at handover"))
	}
	return errors.Join(errs...)
}

// openDoors lists what the settings leave open although -auth.enabled asks
// for tenants to be authenticated: a door that is open by mistake should
// be said at start-up, not found by an attacker.
func (c *Config) openDoors() []string {
	if !c.AuthEnabled {
		return nil
	}
	var open []string
	if c.runs("ingester") && c.Security.GRPCTLS.ClientCAPath == "" {
		open = append(open, "gRPC accepts any caller, who may read or write any tenant (set -grpc.tls-cert-path, -grpc.tls-key-path and -grpc.tls-client-ca-path)")
	} else if c.runs(queue.FrontendComponent) && c.Security.GRPCTLS.ClientCAPath == "" {
		open = append(open, "gRPC accepts any caller, who may pull the query frontend's queries and answer them for any tenant (set -grpc.tls-cert-path, -grpc.tls-key-path and -grpc.tls-client-ca-path)")
	}
	if c.Ring.KeyFile == "" {
		open = append(open, "gossip is neither encrypted nor authenticated: anyone who reaches it can change the ring (set -memberlist.key-file)")
	}
	return open
}
