// Package promtime parses the time parameters of the Prometheus HTTP API
// as Prometheus does (web/api/v1's parseTime), for every handler that
// reads one outside the upstream API. It owns parsing only: it must never
// know about requests, tenants or limits.
package promtime

import (
	"fmt"
	"math"
	"strconv"
	"time"

	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// Parse reads Unix seconds with millisecond precision, RFC 3339, or the
// API's boundary times.
func Parse(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case v1.MinTime.Format(time.RFC3339Nano):
		return v1.MinTime, nil
	case v1.MaxTime.Format(time.RFC3339Nano):
		return v1.MaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}
