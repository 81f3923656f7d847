package tenant

import (
	"fmt"
	"net/http"
)

// Middleware puts the request's tenant into its context, or answers 401.
//
// With credentials, the tenant is the one the request's bearer token or
// basic-auth user maps to; an X-Scope-OrgID header, if sent, must name the
// same tenant. Without credentials the tenant is the X-Scope-OrgID header
// (set by a gateway in front, when required); a request without one
// belongs to Anonymous unless required is set.
//
// A header naming several tenants ("a|b") is refused: writes, and reads
// without tenant federation, belong to exactly one tenant.
func Middleware(required bool, creds *Credentials, next http.Handler) http.Handler {
	return middleware(required, creds, func(header string) ([]string, error) {
		return []string{header}, Validate(header)
	}, next)
}

// FederatedMiddleware is Middleware for the read endpoints when tenant
// federation is enabled: the X-Scope-OrgID header may name several tenants
// joined by Separator, and the context then carries them all (see
// IDsFromContext). A credential from the tokens file maps to one tenant and
// grants no other, so with credentials the header must still name exactly
// the credential's tenant: cross-tenant reads need a trusted gateway that
// authenticates the client and sets the header itself.
func FederatedMiddleware(required bool, creds *Credentials, next http.Handler) http.Handler {
	return middleware(required, creds, ParseIDs, next)
}

func middleware(required bool, creds *Credentials, parse func(header string) ([]string, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, err := identify(r, required, creds, parse)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIDs(r.Context(), ids)))
	})
}

func identify(r *http.Request, required bool, creds *Credentials, parse func(string) ([]string, error)) ([]string, error) {
	header := r.Header.Get(HeaderName)
	if creds != nil {
		id, err := creds.tenantOf(r)
		if err != nil {
			return nil, err
		}
		if header != "" && header != id {
			return nil, fmt.Errorf("the %s header names another tenant than the credential", HeaderName)
		}
		return []string{id}, nil
	}
	if header == "" && !required {
		return []string{Anonymous}, nil
	}
	return parse(header)
}
