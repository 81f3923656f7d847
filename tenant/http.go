package tenant

import (
	"net/http"
)

// Middleware puts the request's tenant into its context. The tenant comes
// from the X-Scope-OrgID header; without one the request belongs to
// Anonymous, unless required is set, in which case it gets 401.
func Middleware(required bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderName)
		if id == "" && !required {
			id = Anonymous
		}
		if err := Validate(id); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithID(r.Context(), id)))
	})
}
