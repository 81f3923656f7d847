package tenant

import (
	"context"
	"errors"
	"fmt"
)

const (
	// HeaderName is the HTTP header that carries the tenant, as in Cortex and Mimir.
	HeaderName = "X-Scope-OrgID"
	// MetadataKey is the gRPC metadata key that carries the tenant.
	MetadataKey = "x-scope-orgid"
	// Anonymous is the tenant of requests without one when auth is disabled.
	Anonymous = "anonymous"
	// MaxLength is the longest tenant ID accepted, in bytes.
	MaxLength = 150
)

// ErrNoTenant means a request carried no tenant where one was required.
var ErrNoTenant = errors.New("no tenant ID in request (set the " + HeaderName + " header)")

type ctxKey struct{}

// WithID returns a context that carries the tenant id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant of ctx, or ErrNoTenant.
func FromContext(ctx context.Context) (string, error) {
	id, ok := ctx.Value(ctxKey{}).(string)
	if !ok || id == "" {
		return "", ErrNoTenant
	}
	return id, nil
}

// Validate reports whether id is a safe tenant ID: 1 to MaxLength bytes of
// [A-Za-z0-9!-_.*'()], and neither "." nor "..". The tenant ID becomes a
// bbolt bucket name and part of file paths, so this check is what stops path
// traversal (CVE-2021-36157 in Cortex).
func Validate(id string) error {
	switch {
	case id == "":
		return ErrNoTenant
	case len(id) > MaxLength:
		return fmt.Errorf("tenant ID is %d bytes long, longer than the limit of %d", len(id), MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("tenant ID %q is not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		if !allowed(id[i]) {
			return fmt.Errorf("tenant ID %q has the character %q, which is not allowed (allowed: A-Z a-z 0-9 ! - _ . * ' ( ))", id, id[i])
		}
	}
	return nil
}

func allowed(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}
