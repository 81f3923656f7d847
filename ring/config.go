package ring

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config is the ring's part of the command line. Zero values are not
// defaults: RegisterFlags sets the defaults, and Validate rejects a zero
// where it would be meaningless.
type Config struct {
	// BindAddr is host:port the memberlist listens on for UDP and TCP. An
	// empty host means all interfaces; port 0 asks the kernel for a free
	// port (tests), which GossipAddr then reports.
	BindAddr string `yaml:"bind_address"`
	// AdvertiseAddr is the host or host:port other members dial. Empty
	// means: the bind host if it is a specific address, else a private
	// IPv4 of this machine, else 127.0.0.1. A missing port means the bind
	// port.
	AdvertiseAddr string `yaml:"advertise_address"`
	// Join is a comma-separated list of host:port of existing members.
	// Empty starts a new cluster. A join that fails is retried in the
	// background; it never fails Start.
	Join string `yaml:"join"`
	// ClusterLabel is put on every memberlist packet and stream; members
	// with another label are refused. Empty disables the check (and then
	// only members without a label are accepted).
	ClusterLabel string `yaml:"cluster_label"`
	// KeyFile names the gossip keyring: one base64 AES key of 16, 24 or 32
	// bytes per line, the first used to encrypt, all tried to decrypt (so
	// a key can be rotated in without a cluster-wide restart). Every packet
	// and stream is then encrypted and authenticated, and a member without
	// a key in the ring can neither join nor read the ring. Empty: gossip
	// is plaintext.
	KeyFile string `yaml:"key_file"`
	// HeartbeatPeriod is how often this member refreshes its entry. Must
	// be positive.
	HeartbeatPeriod time.Duration `yaml:"heartbeat_period"`
	// HeartbeatTimeout is how old a heartbeat may be before the instance
	// counts as unhealthy. Must exceed HeartbeatPeriod. Ten times this is
	// also when a silent instance is forgotten, and how long a LEFT
	// tombstone is kept.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// NumTokens is how many tokens a token-owning member claims. Must be
	// positive.
	NumTokens int `yaml:"num_tokens"`
	// ReplicationFactor is how many instances hold each series. Must be
	// positive.
	ReplicationFactor int `yaml:"replication_factor"`
	// ZoneAwareness places the replicas of a series in distinct zones.
	ZoneAwareness bool `yaml:"zone_awareness_enabled"`
	// Zone is this instance's zone. NewMember requires it for a
	// token-owning instance when ZoneAwareness is set; instances without
	// tokens (distributors, queriers) may leave it empty.
	Zone string `yaml:"zone"`
}

// RegisterFlags registers the ring flags with their defaults on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BindAddr, "memberlist.bind-address", ":7946",
		"host:port to listen on for gossip (UDP and TCP); an empty host means all interfaces")
	fs.StringVar(&c.AdvertiseAddr, "memberlist.advertise-address", "",
		"host[:port] other members dial; empty derives it from the bind address or a private IP")
	fs.StringVar(&c.Join, "memberlist.join", "",
		"comma-separated host:port of members to join; failed joins are retried in the background")
	fs.StringVar(&c.ClusterLabel, "memberlist.cluster-label", "orrery",
		"label on every gossip message; members of a cluster with another label are refused")
	fs.StringVar(&c.KeyFile, "memberlist.key-file", "",
		"file of base64 AES keys (16, 24 or 32 bytes), one a line, the first encrypting: gossip is encrypted and members without a key are refused; empty gossips in plaintext")
	fs.DurationVar(&c.HeartbeatPeriod, "ring.heartbeat-period", 5*time.Second,
		"how often this instance refreshes its heartbeat in the ring")
	fs.DurationVar(&c.HeartbeatTimeout, "ring.heartbeat-timeout", time.Minute,
		"an instance whose last heartbeat is older is unhealthy; after 10x it is forgotten")
	fs.IntVar(&c.NumTokens, "ring.num-tokens", 128,
		"number of tokens a token-owning instance claims in the ring")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", 1,
		"number of instances every series is written to")
	fs.BoolVar(&c.ZoneAwareness, "ring.zone-awareness-enabled", false,
		"place the replicas of a series in distinct zones")
	fs.StringVar(&c.Zone, "instance.zone", "",
		"zone of this instance; required with -ring.zone-awareness-enabled")
}

// Validate reports every invalid setting at once, naming the flag to fix.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := splitBindAddr(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("-memberlist.bind-address: %w", err))
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAdvertiseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("-memberlist.advertise-address: %w", err))
		}
	}
	for _, p := range joinPeers(c.Join) {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("-memberlist.join: peer %q: %w", p, err))
		}
	}
	if len(c.ClusterLabel) > memberlist.LabelMaxSize {
		errs = append(errs, fmt.Errorf("-memberlist.cluster-label: %d bytes, at most %d allowed",
			len(c.ClusterLabel), memberlist.LabelMaxSize))
	}
	if c.KeyFile != "" {
		if _, err := loadKeyring(c.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("-memberlist.key-file: %w", err))
		}
	}
	if c.HeartbeatPeriod <= 0 {
		errs = append(errs, fmt.Errorf("-ring.heartbeat-period must be positive, got %s", c.HeartbeatPeriod))
	}
	if c.HeartbeatTimeout <= c.HeartbeatPeriod {
		errs = append(errs, fmt.Errorf("-ring.heartbeat-timeout (%s) must exceed -ring.heartbeat-period (%s)",
			c.HeartbeatTimeout, c.HeartbeatPeriod))
	}
	if c.NumTokens <= 0 {
		errs = append(errs, fmt.Errorf("-ring.num-tokens must be positive, got %d", c.NumTokens))
	}
	if c.ReplicationFactor <= 0 {
		errs = append(errs, fmt.Errorf("-replication-factor must be positive, got %d", c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// loadKeyring reads a key file: base64 keys, one a line, blank lines
// ignored, the first the primary.
func loadKeyring(path string) (*memberlist.Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip key file: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("gossip key file %s line %d: not base64: %w", path, i+1, err)
		}
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("gossip key file %s line %d: %d bytes: %w", path, i+1, len(key), err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip key file %s holds no key", path)
	}
	return memberlist.NewKeyring(keys[1:], keys[0])
}

// joinPeers splits the -memberlist.join list, dropping empty entries.
func joinPeers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitBindAddr parses host:port; the host must be empty or an IP literal
// because memberlist binds to addresses, not names.
func splitBindAddr(s string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	if h != "" && net.ParseIP(h) == nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", h)
	}
	port, err = parsePort(p)
	return h, port, err
}

// splitAdvertiseAddr parses host or host:port; port 0 means "the bind port".
func splitAdvertiseAddr(s string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is the host (IPv6 literals included).
		h, p = strings.Trim(s, "[]"), "0"
	}
	if h == "" {
		return "", 0, fmt.Errorf("empty host in %q", s)
	}
	port, err = parsePort(p)
	return h, port, err
}

func parsePort(p string) (int, error) {
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port %q", p)
	}
	return port, nil
}
