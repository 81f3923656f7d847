package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/prometheus/common/version"
	"go.yaml.in/yaml/v3"

	"github.com/orrery/orrery/distributor"
	"github.com/orrery/orrery/frontend"
	"github.com/orrery/orrery/frontend/queue"
	"github.com/orrery/orrery/ingester"
	"github.com/orrery/orrery/limits"
	"github.com/orrery/orrery/otlp"
	"github.com/orrery/orrery/querier"
	"github.com/orrery/orrery/ring"
	"github.com/orrery/orrery/ruler"
	"github.com/orrery/orrery/store"
)

// Config is the whole process's configuration: the process-level settings
// plus each component's own Config, which registers its own flags.
type Config struct {
	Target            string `yaml:"target"`
	HTTPListenAddress string `yaml:"http_listen_address"`
	GRPCListenAddress string `yaml:"grpc_listen_address"`
	DataDir           string `yaml:"data_dir"`
	// StoreBlockCacheBytes bounds the ingester store's cache of decoded
	// compacted blocks.
	StoreBlockCacheBytes int    `yaml:"store_block_cache_bytes"`
	InstanceID           string `yaml:"instance_id"`
	InstanceAddr         string `yaml:"instance_addr"`
	AuthEnabled          bool   `yaml:"auth_enabled"`
	AuthTokensFile       string `yaml:"auth_tokens_file"`
	LogLevel             string `yaml:"log_level"`
	LogFormat            string `yaml:"log_format"`

	Server      HTTPConfig         `yaml:"server"`
	Ring        ring.Config        `yaml:"ring"`
	Ingester    ingester.Config    `yaml:"ingester"`
	Distributor distributor.Config `yaml:"distributor"`
	// OTLP is the distributor's OTLP endpoint.
	OTLP    otlp.Config    `yaml:"otlp"`
	Querier querier.Config `yaml:"querier"`
	// FrontendQueue is the query frontend's per-tenant queue;
	// FrontendWorker is how a querier finds frontends to pull work from.
	FrontendQueue  queue.Config       `yaml:"frontend_queue"`
	FrontendWorker queue.WorkerConfig `yaml:"frontend_worker"`
	// Frontend is what the query frontend does to a query: split, shard,
	// cache.
	Frontend frontend.Config `yaml:"frontend"`
	// Ruler evaluates tenants' rules.
	Ruler ruler.Config `yaml:"ruler"`
	// TenantFederation enables cross-tenant reads.
	TenantFederation querier.TenantFederationConfig `yaml:"tenant_federation"`
	// Limits are every tenant's defaults; RuntimeConfig names the file of
	// per-tenant overrides.
	Limits        limits.Limits `yaml:"limits"`
	RuntimeConfig limits.Config `yaml:"runtime_config"`
	// Security is the admin credential, pprof and gRPC TLS (security.go).
	Security securityConfig `yaml:",inline"`
}

var targets = map[string][]string{
	"all":            {"distributor", "ingester", "querier", queue.FrontendComponent, ruler.Component},
	"distributor":    {"distributor"},
	"ingester":       {"ingester"},
	"querier":        {"querier"},
	"query-frontend": {queue.FrontendComponent},
	"ruler":          {ruler.Component},
}

// targetNames lists -target's values for messages.
const targetNames = "all, distributor, ingester, querier, query-frontend or ruler"

func (c *Config) registerFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&c.Target, "target", "all", "Component to run: "+targetNames+".")
	fs.StringVar(&c.HTTPListenAddress, "http.listen-address", ":9009", "Address of the HTTP server (remote write, query API, status pages).")
	fs.StringVar(&c.GRPCListenAddress, "grpc.listen-address", ":9095", "Address of the gRPC server that ingesters and query frontends serve.")
	fs.StringVar(&c.DataDir, "data.dir", "./data", "Directory for the WAL, the store and the ring tokens.")
	fs.IntVar(&c.StoreBlockCacheBytes, "store.block-cache-bytes", store.DefaultOptions().BlockCacheBytes, "Bytes of decoded compacted blocks the ingester's store keeps for later reads (0 keeps none).")
	fs.StringVar(&c.InstanceID, "instance.id", host, "This process's name in the ring; unique in the cluster.")
	fs.StringVar(&c.InstanceAddr, "instance.addr", "", "gRPC host:port other processes dial to reach this one (default: the gRPC listen port on the memberlist advertise host, or 127.0.0.1).")
	fs.BoolVar(&c.AuthEnabled, "auth.enabled", false, "Require the X-Scope-OrgID header; when false a request without it belongs to tenant \"anonymous\".")
	fs.StringVar(&c.AuthTokensFile, "auth.tokens-file", "", "YAML file mapping bearer tokens and basic-auth users to tenants (docs/tenancy.md); needs -auth.enabled.")
	fs.StringVar(&c.LogLevel, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.LogFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	c.Server.RegisterFlags(fs)
	c.Ring.RegisterFlags(fs)
	c.Ingester.RegisterFlags(fs)
	c.Distributor.RegisterFlags(fs)
	c.OTLP.RegisterFlags(fs)
	c.Querier.RegisterFlags(fs)
	c.FrontendQueue.RegisterFlags(fs)
	c.FrontendWorker.RegisterFlags(fs)
	c.Frontend.RegisterFlags(fs)
	c.Ruler.RegisterFlags(fs)
	c.TenantFederation.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.RuntimeConfig.RegisterFlags(fs)
	c.Security.registerFlags(fs)
}

func (c *Config) validate() error {
	if _, ok := targets[c.Target]; !ok {
		return fmt.Errorf("unknown -target %q (want %s)", c.Target, targetNames)
	}
	if c.AuthTokensFile != "" && !c.AuthEnabled {
		return errors.New("-auth.tokens-file needs -auth.enabled=true")
	}
	if c.InstanceID == "" {
		return errors.New("-instance.id must not be empty")
	}
	return errors.Join(c.Server.Validate(), c.Ring.Validate(), c.Ingester.Validate(), c.Distributor.Validate(), c.OTLP.Validate(), c.Querier.Validate(), c.FrontendQueue.Validate(), c.Frontend.Validate(), c.Ruler.Validate(), c.Limits.Validate(),
		c.Security.validate(c.runs("ingester")))
}

func (c *Config) runs(component string) bool {
	for _, t := range targets[c.Target] {
		if t == component {
			return true
		}
	}
	return false
}

// advertisedHTTPAddr is the HTTP address this process registers in the
// ring: the host of the advertised gRPC address and the HTTP listen port.
func (c *Config) advertisedHTTPAddr(grpcAddr string) (string, error) {
	host, _, err := net.SplitHostPort(grpcAddr)
	if err != nil {
		return "", fmt.Errorf("-instance.addr: %w", err)
	}
	_, port, err := net.SplitHostPort(c.HTTPListenAddress)
	if err != nil {
		return "", fmt.Errorf("-http.listen-address: %w", err)
	}
	return net.JoinHostPort(host, port), nil
}

// advertisedAddr is the gRPC address this process registers in the ring.
func (c *Config) advertisedAddr() (string, error) {
	if c.InstanceAddr != "" {
		return c.InstanceAddr, nil
	}
	host, port, err := net.SplitHostPort(c.GRPCListenAddress)
	if err != nil {
		return "", fmt.Errorf("-grpc.listen-address: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
		if h, _, err := net.SplitHostPort(c.Ring.AdvertiseAddr); err == nil && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, port), nil
}

// loadConfig parses flags, then the YAML file named by -config.file, then
// the flags again: defaults < file < command line.
func loadConfig(args []string) (*Config, map[string]string, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("orrery", flag.ContinueOnError)
	var file string
	var printConfig, printVersion bool
	fs.StringVar(&file, "config.file", "", "YAML configuration file; every flag can be set there. Flags given on the command line win.")
	fs.BoolVar(&printConfig, "print.config", false, "Print the effective configuration as YAML and exit.")
	fs.BoolVar(&printVersion, "version", false, "Print the version, revision and build date and exit.")
	cfg.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if printVersion {
		fmt.Println(version.Print("orrery"))
		os.Exit(0)
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("read -config.file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// io.EOF is an empty file: an empty configuration.
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("parse -config.file %s: %w", file, err)
		}
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	if printConfig {
		out, err := cfg.yaml()
		if err != nil {
			return nil, nil, err
		}
		fmt.Print(out)
		os.Exit(0)
	}
	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })
	return cfg, flags, nil
}

// yaml is the effective configuration as a -config.file would hold it.
func (c *Config) yaml() (string, error) {
	out, err := yaml.Marshal(c)
	return string(out), err
}
