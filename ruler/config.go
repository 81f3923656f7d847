package ruler

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the ruler's configuration.
type Config struct {
	// RulePath holds one directory per tenant, named by the tenant's id,
	// with that tenant's rule files (*.yaml, *.yml); each file is a
	// namespace. Empty: <data.dir>/rules.
	RulePath string `yaml:"rule_path"`
	// PollInterval is how often the files and the ring are looked at.
	PollInterval time.Duration `yaml:"poll_interval"`
	// EvaluationInterval is a group's interval when it sets none.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// AlertmanagerURL lists Alertmanagers, comma-separated, that receive
	// every tenant's alerts unless the tenant's ruler_alertmanager_url
	// says otherwise.
	AlertmanagerURL string `yaml:"alertmanager_url"`
	// SendTenantHeader sets X-Scope-OrgID to the tenant on notifications,
	// for a multi-tenant Alertmanager (Mimir's, Cortex's).
	SendTenantHeader bool `yaml:"alertmanager_send_tenant_header"`
	// NotificationQueueCapacity bounds each tenant's alerts waiting to be
	// sent; the oldest are dropped past it, and counted.
	NotificationQueueCapacity int           `yaml:"notification_queue_capacity"`
	NotificationTimeout       time.Duration `yaml:"notification_timeout"`
	// ResendDelay, OutageTolerance and ForGracePeriod are Prometheus's
	// rules.alert.resend-delay, rules.alert.for-outage-tolerance and
	// rules.alert.for-grace-period.
	ResendDelay     time.Duration `yaml:"resend_delay"`
	OutageTolerance time.Duration `yaml:"for_outage_tolerance"`
	ForGracePeriod  time.Duration `yaml:"for_grace_period"`
	// ExternalURL is the alerts' generator URL base.
	ExternalURL string `yaml:"external_url"`
	// QueryTimeout bounds one rule's query unless the tenant's
	// query_timeout does; the process sets it to -querier.timeout, as
	// the query API is bounded.
	QueryTimeout time.Duration `yaml:"-"`
}

// RegisterFlags registers the ruler's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.RulePath, "ruler.rule-path", "", "Directory of rule files: one subdirectory per tenant, named by its id, holding Prometheus rule files (*.yaml, *.yml), each a namespace. Default: <data.dir>/rules.")
	fs.DurationVar(&c.PollInterval, "ruler.poll-interval", 10*time.Second, "How often the ruler re-reads rule files and re-checks which rule groups it owns.")
	fs.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", time.Minute, "Evaluation interval of rule groups that set none.")
	fs.StringVar(&c.AlertmanagerURL, "ruler.alertmanager-url", "", "Comma-separated Alertmanager URLs (http://host:9093, with a path prefix if it has one) that receive alerts through the v2 API; a tenant's ruler_alertmanager_url overrides it. Empty: alerts are evaluated, listed and recorded, not sent.")
	fs.BoolVar(&c.SendTenantHeader, "ruler.alertmanager-send-tenant-header", false, "Send the tenant's id in X-Scope-OrgID with its alerts, for a multi-tenant Alertmanager.")
	fs.IntVar(&c.NotificationQueueCapacity, "ruler.notification-queue-capacity", 10000, "Alerts of one tenant waiting to be sent; older ones are dropped past it.")
	fs.DurationVar(&c.NotificationTimeout, "ruler.notification-timeout", 10*time.Second, "Timeout of one request to an Alertmanager.")
	fs.DurationVar(&c.ResendDelay, "ruler.resend-delay", time.Minute, "How often a firing alert is sent again (Prometheus's rules.alert.resend-delay).")
	fs.DurationVar(&c.OutageTolerance, "ruler.for-outage-tolerance", time.Hour, "How long rules may be down and still have their `for` state restored (Prometheus's rules.alert.for-outage-tolerance).")
	fs.DurationVar(&c.ForGracePeriod, "ruler.for-grace-period", 10*time.Minute, "Minimum time an alert with `for` stays pending after a restore (Prometheus's rules.alert.for-grace-period).")
	fs.StringVar(&c.ExternalURL, "ruler.external.url", "", "Base of alerts' generator URLs, usually the URL users open Grafana or the query API at.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.PollInterval <= 0 || c.EvaluationInterval <= 0 || c.NotificationTimeout <= 0 || c.ResendDelay <= 0 {
		return errors.New("-ruler.poll-interval, -ruler.evaluation-interval, -ruler.notification-timeout and -ruler.resend-delay must be positive")
	}
	if c.NotificationQueueCapacity < 1 {
		return errors.New("-ruler.notification-queue-capacity must be positive")
	}
	if _, err := parseURLs(c.AlertmanagerURL); err != nil {
		return fmt.Errorf("-ruler.alertmanager-url: %w", err)
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("-ruler.external.url: %w", err)
		}
	}
	return nil
}

// parseURLs parses a comma-separated list of Alertmanager URLs.
func parseURLs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, err
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http(s)://host[:port][/prefix] URL", part)
		}
		out = append(out, u)
	}
	return out, nil
}
