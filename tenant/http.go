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
func Middleware(required bool, creds *Credentials, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := identify(r, required, creds)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithID(r.Context(), id)))
	})
}

func identify(r *http.Request, required bool, creds *Credentials) (string, error) {
	header := r.Header.Get(HeaderName)
	if creds != nil {
		id, err := creds.tenantOf(r)
		if err != nil {
			return "", err
		}
		if header != "" && header != id {
			return "", fmt.Errorf("the %s header names another tenant than the credential", HeaderName)
		}
		return id, nil
	}
	if header == "" && !required {
		return Anonymous, nil
	}
	return header, Validate(header)
}
