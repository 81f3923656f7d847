package frontend

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/internal/promtime"
)

// checkLength enforces the tenants' max_query_length before any work, as
// the querier does (same message), on the smallest limit of the tenants.
func (f *Frontend) checkLength(ids []string, start, end time.Time) error {
	var limit time.Duration
	for _, id := range ids {
		if l := f.limits.For(id).MaxQueryLength; l > 0 && (limit == 0 || l < limit) {
			limit = l
		}
	}
	if limit <= 0 || start.Equal(v1.MinTime) || end.Equal(v1.MaxTime) {
		return nil
	}
	if length := end.Sub(start); length > limit {
		return apierr.New(apierr.BadData, "the query time range exceeds the limit (query length: %s, limit: %s) (err-orrery-max-query-length: raise the tenant's max_query_length, or -querier.max-query-length)",
			length, limit)
	}
	return nil
}

// parseRangeParams parses start, end and step as the Prometheus API does,
// with its error messages.
func parseRangeParams(form url.Values) (start, end time.Time, step time.Duration, err error) {
	invalid := func(param string, err error) error { return fmt.Errorf("invalid parameter %q: %w", param, err) }
	if start, err = promtime.Parse(form.Get("start")); err != nil {
		return start, end, step, invalid("start", err)
	}
	if end, err = promtime.Parse(form.Get("end")); err != nil {
		return start, end, step, invalid("end", err)
	}
	if end.Before(start) {
		return start, end, step, invalid("end", errors.New("end timestamp must not be before start time"))
	}
	if step, err = parseDuration(form.Get("step")); err != nil {
		return start, end, step, invalid("step", err)
	}
	if step <= 0 {
		return start, end, step, invalid("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))
	}
	if end.Sub(start)/step > 11000 {
		return start, end, step, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	return start, end, step, nil
}

// parseDuration reads a duration as the Prometheus API does: seconds, or
// a Prometheus duration.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// wholeMillis reports whether the times and step are whole milliseconds,
// the engine's resolution, and the times within years 0 to 9999, which
// RFC 3339 can write; anything else is forwarded unsplit.
func wholeMillis(start, end time.Time, step time.Duration) bool {
	return start.Nanosecond()%int(time.Millisecond) == 0 && end.Nanosecond()%int(time.Millisecond) == 0 &&
		step%time.Millisecond == 0 && start.Year() >= 0 && end.Year() <= 9999
}

// formatTime writes a millisecond timestamp exactly.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}
