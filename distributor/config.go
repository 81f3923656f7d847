package distributor

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/orrery/orrery/distributor/hatracker"
)

// Config is the distributor's configuration.
type Config struct {
	// MaxRecvMsgSize bounds both the compressed body and what it decodes to.
	MaxRecvMsgSize int `yaml:"max_recv_msg_size"`
	// RemoteTimeout bounds one push to the ingesters.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
	// NameValidationScheme is "legacy" ([a-zA-Z_:][a-zA-Z0-9_:]*, what
	// Cortex and Mimir accept by default) or "utf8" (any valid UTF-8, as
	// Prometheus 3 accepts).
	NameValidationScheme string `yaml:"name_validation_scheme"`

	HATracker hatracker.Config `yaml:"ha_tracker"`
}

// RegisterFlags registers the distributor's flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write body accepted, compressed and decompressed, in bytes.")
	fs.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 5*time.Second, "Timeout of one push to the ingesters.")
	fs.StringVar(&c.NameValidationScheme, "validation.name-validation-scheme", "legacy", "Which metric and label names are valid: legacy or utf8.")
	c.HATracker.RegisterFlags(fs)
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.MaxRecvMsgSize <= 0 {
		return errors.New("distributor.max-recv-msg-size must be positive")
	}
	if c.RemoteTimeout <= 0 {
		return errors.New("distributor.remote-timeout must be positive")
	}
	if _, err := c.scheme(); err != nil {
		return err
	}
	return c.HATracker.Validate()
}

func (c *Config) scheme() (model.ValidationScheme, error) {
	switch c.NameValidationScheme {
	case "legacy":
		return model.LegacyValidation, nil
	case "utf8":
		return model.UTF8Validation, nil
	}
	return 0, fmt.Errorf("validation.name-validation-scheme: unknown scheme %q (want legacy or utf8)", c.NameValidationScheme)
}
