package tenant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// Separator joins the tenants of a cross-tenant read in the header, as
	// in Mimir's tenant federation: "team-a|team-b". Validate refuses it in
	// a tenant ID, so a joined value can never be mistaken for one tenant.
	Separator = "|"
)

var (
	// ErrNoTenant means a request carried no tenant where one was required.
	ErrNoTenant = errors.New("no tenant ID in request (set the " + HeaderName + " header)")
	// ErrSeveralTenants means a request spanning several tenants reached
	// code that serves one tenant: writes, and every call to an ingester.
	ErrSeveralTenants = errors.New("the request names several tenants; only reads, with -tenant-federation.enabled, may span tenants")
)

type ctxKey struct{}

// WithID returns a context that carries the tenant id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// WithIDs returns a context that carries the tenants ids, as ParseIDs
// returns them: valid, sorted and unique. With one tenant it is WithID.
func WithIDs(ctx context.Context, ids []string) context.Context {
	return WithID(ctx, JoinIDs(ids))
}

// FromContext returns the one tenant of ctx: ErrNoTenant if it has none,
// ErrSeveralTenants if it spans several. Code that serves one tenant calls
// it, so that a cross-tenant context fails there instead of being taken
// for a tenant called "a|b".
func FromContext(ctx context.Context) (string, error) {
	id, ok := ctx.Value(ctxKey{}).(string)
	if !ok || id == "" {
		return "", ErrNoTenant
	}
	if strings.Contains(id, Separator) {
		return "", ErrSeveralTenants
	}
	return id, nil
}

// IDsFromContext returns the tenants of ctx, sorted and unique: one, or
// several for a cross-tenant read. The caller owns the returned slice.
func IDsFromContext(ctx context.Context) ([]string, error) {
	id, ok := ctx.Value(ctxKey{}).(string)
	if !ok || id == "" {
		return nil, ErrNoTenant
	}
	return strings.Split(id, Separator), nil
}

// ParseIDs parses a header naming one tenant or several joined by
// Separator. Each must pass Validate; the result is sorted and without
// duplicates, so "b|a|b" and "a|b" are the same read.
func ParseIDs(header string) ([]string, error) {
	ids := strings.Split(header, Separator)
	for _, id := range ids {
		if id == "" && len(ids) > 1 {
			return nil, fmt.Errorf("tenant IDs %q: an empty tenant ID between or around %q", header, Separator)
		}
		if err := Validate(id); err != nil {
			return nil, err
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// JoinIDs is the inverse of ParseIDs: the canonical form of a set of
// tenants, used in logs and as the tenant label of a cross-tenant read's
// metrics.
func JoinIDs(ids []string) string {
	return strings.Join(ids, Separator)
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
