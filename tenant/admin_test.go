package tenant

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdminMiddleware(t *testing.T) {
	dir := t.TempDir()
	adminsPath := filepath.Join(dir, "admins.yaml")
	require.NoError(t, os.WriteFile(adminsPath, []byte("tokens: [{token: op-secret}]\nusers: [{username: ops, password: pw}]\n"), 0o600))
	admins, err := LoadAdmins(adminsPath)
	require.NoError(t, err)

	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	for _, c := range []struct {
		name     string
		required bool
		admins   *Admins
		set      func(*http.Request)
		code     int
	}{
		{"open without auth", false, nil, func(*http.Request) {}, 200},
		{"closed with auth and no admins", true, nil, bearer("op-secret"), 401},
		{"admin token", true, admins, bearer("op-secret"), 200},
		{"admin basic auth", true, admins, func(r *http.Request) { r.SetBasicAuth("ops", "pw") }, 200},
		{"admin file without -auth.enabled still guards", false, admins, func(*http.Request) {}, 401},
		{"no credential", true, admins, func(*http.Request) {}, 401},
		{"a tenant's token", true, admins, bearer("token-a"), 401},
		{"a tenant header", true, admins, func(r *http.Request) { r.Header.Set(HeaderName, "team-a") }, 401},
		{"wrong password", true, admins, func(r *http.Request) { r.SetBasicAuth("ops", "x") }, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			reached := false
			h := AdminMiddleware(c.required, c.admins, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
			r := httptest.NewRequest(http.MethodPost, "/ingester/shutdown", nil)
			c.set(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, c.code, w.Code, w.Body.String())
			require.Equal(t, c.code == 200, reached)
		})
	}

	for _, bad := range []string{"", "tokens: []", "tokens: [{token: ''}]", "tokens: [{token: x, tenant: a}]", "users: [{username: ops}]"} {
		require.NoError(t, os.WriteFile(adminsPath, []byte(bad), 0o600))
		_, err := LoadAdmins(adminsPath)
		require.Error(t, err, bad)
	}
}
