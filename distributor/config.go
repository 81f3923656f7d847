package distributor

import (
	"errors"
	"flag"
	"time"

	"github.com/orrery/orrery/distributor/hatracker"
)

// Config is the distributor's configuration.
type Config struct {
	// MaxRecvMsgSize bounds both the compressed body and what it decodes to.
	MaxRecvMsgSize int `yaml:"max_recv_msg_size"`
	// MaxRequestDecodedBytes bounds the memory one request takes once
	// decoded (see budget.go for what counts); 0 is unlimited.
	MaxRequestDecodedBytes int `yaml:"max_request_decoded_bytes"`
	// InstanceLimits bound what one distributor holds for all tenants.
	InstanceLimits InstanceLimits `yaml:"instance_limits"`
	// RemoteTimeout bounds one push to the ingesters.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
	// ReplicaWait bounds how long a write that reached its quorum still
	// waits for the replicas not yet answered (distributor.go, send).
	ReplicaWait time.Duration `yaml:"replica_wait"`

	HATracker hatracker.Config `yaml:"ha_tracker"`
}

// InstanceLimits are one distributor's limits over every request in flight,
// named as Mimir names them. Zero is unlimited.
type InstanceLimits struct {
	MaxInflightPushRequests      int   `yaml:"max_inflight_push_requests"`
	MaxInflightPushRequestsBytes int64 `yaml:"max_inflight_push_requests_bytes"`
}

// RegisterFlags registers the distributor's flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write body accepted, compressed and decompressed, in bytes.")
	fs.IntVar(&c.MaxRequestDecodedBytes, "distributor.max-request-decoded-bytes", 64<<20, "Most memory one remote-write request may take once decoded: its labels, samples and metadata and their copies for the ingesters, in bytes; past it, 413. 0 is unlimited.")
	fs.IntVar(&c.InstanceLimits.MaxInflightPushRequests, "distributor.instance-limits.max-inflight-push-requests", 2000, "Most remote-write requests this distributor handles at once; past it, 503 with Retry-After. 0 is unlimited.")
	fs.Int64Var(&c.InstanceLimits.MaxInflightPushRequestsBytes, "distributor.instance-limits.max-inflight-push-requests-bytes", 1<<30, "Most memory all remote-write requests in flight may hold in this distributor (bodies, their decompression and decoded form, until the last replica answers); past it, 503 with Retry-After. 0 is unlimited.")
	fs.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 5*time.Second, "Timeout of one push to the ingesters.")
	fs.DurationVar(&c.ReplicaWait, "distributor.replica-wait", 100*time.Millisecond, "The longest a write that reached its quorum still waits for its other replicas before it is answered (it waits twice the time the quorum took, at most this), so that the client's next write rarely reaches a replica before this one and is refused there as out of order. 0 answers at quorum.")
	c.HATracker.RegisterFlags(fs)
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.MaxRecvMsgSize <= 0 {
		return errors.New("distributor.max-recv-msg-size must be positive")
	}
	if c.MaxRequestDecodedBytes < 0 || c.InstanceLimits.MaxInflightPushRequests < 0 || c.InstanceLimits.MaxInflightPushRequestsBytes < 0 {
		return errors.New("distributor: request and in-flight limits must not be negative")
	}
	// A body is charged as its buffer grows (up to twice its size), then its
	// decompression, then its decoded form.
	if l := c.InstanceLimits.MaxInflightPushRequestsBytes; l > 0 && l < 3*int64(c.MaxRecvMsgSize)+int64(c.MaxRequestDecodedBytes) {
		return errors.New("distributor.instance-limits.max-inflight-push-requests-bytes must be at least 3 × -distributor.max-recv-msg-size + -distributor.max-request-decoded-bytes, or the largest request could never fit")
	}
	if c.RemoteTimeout <= 0 {
		return errors.New("distributor.remote-timeout must be positive")
	}
	if c.ReplicaWait < 0 {
		return errors.New("distributor.replica-wait must not be negative")
	}
	return c.HATracker.Validate()
}
