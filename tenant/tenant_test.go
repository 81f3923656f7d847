package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"team-a", true}, {"anonymous", true}, {"a.b_c!*'()", true}, {strings.Repeat("x", MaxLength), true},
		{"", false}, {".", false}, {"..", false}, {"../x", false}, {"a/b", false}, {"%2e%2e", false},
		{"a|b", false}, {"a b", false}, {"é", false}, {strings.Repeat("x", MaxLength+1), false},
	} {
		require.Equal(t, c.ok, Validate(c.id) == nil, "%q", c.id)
	}
}

func TestMiddleware(t *testing.T) {
	var seen string
	h := func(w http.ResponseWriter, r *http.Request) { seen, _ = FromContext(r.Context()) }
	for _, c := range []struct {
		required bool
		header   string
		code     int
		tenant   string
	}{
		{false, "", 200, Anonymous},
		{false, "team-a", 200, "team-a"},
		{true, "", 401, ""},
		{true, "../etc", 401, ""},
		{true, "team-b", 200, "team-b"},
	} {
		seen = ""
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if c.header != "" {
			r.Header.Set(HeaderName, c.header)
		}
		w := httptest.NewRecorder()
		Middleware(c.required, nil, http.HandlerFunc(h)).ServeHTTP(w, r)
		require.Equal(t, c.code, w.Code)
		require.Equal(t, c.tenant, seen)
	}
}

func TestParseIDs(t *testing.T) {
	for _, c := range []struct {
		header string
		want   []string // nil: refused
	}{
		{"team-a", []string{"team-a"}},
		{"b|a", []string{"a", "b"}},
		{"b|a|b", []string{"a", "b"}},
		{"a|a", []string{"a"}},
		{"a|", nil}, {"|a", nil}, {"a||b", nil}, {"|", nil}, {"", nil},
		{"a|../etc", nil}, {"a|b c", nil}, {"a|" + strings.Repeat("x", MaxLength+1), nil},
	} {
		got, err := ParseIDs(c.header)
		if c.want == nil {
			require.Error(t, err, "%q", c.header)
			continue
		}
		require.NoError(t, err, "%q", c.header)
		require.Equal(t, c.want, got, "%q", c.header)
		require.Equal(t, JoinIDs(c.want), JoinIDs(got))
	}
}

// A cross-tenant context must never pass for one tenant: FromContext is
// what writes and ingester calls use.
func TestSeveralTenantsInContext(t *testing.T) {
	ctx := WithIDs(context.Background(), []string{"a", "b"})
	_, err := FromContext(ctx)
	require.ErrorIs(t, err, ErrSeveralTenants)
	ids, err := IDsFromContext(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, ids)

	one := WithIDs(context.Background(), []string{"a"})
	id, err := FromContext(one)
	require.NoError(t, err)
	require.Equal(t, "a", id)
	ids, err = IDsFromContext(one)
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, ids)

	_, err = IDsFromContext(context.Background())
	require.ErrorIs(t, err, ErrNoTenant)
}

func TestFederatedMiddleware(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(file, []byte("tokens: [{token: s3cr3t, tenant: team-a}]\n"), 0o644))
	creds, err := LoadCredentials(file)
	require.NoError(t, err)
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = IDsFromContext(r.Context()) })
	for _, c := range []struct {
		name      string
		federated bool
		creds     *Credentials
		header    string
		token     string
		code      int
		tenants   []string
	}{
		{"one tenant", true, nil, "team-a", "", 200, []string{"team-a"}},
		{"several tenants", true, nil, "team-b|team-a", "", 200, []string{"team-a", "team-b"}},
		{"duplicates collapse", true, nil, "team-a|team-a", "", 200, []string{"team-a"}},
		{"no header", true, nil, "", "", 401, nil},
		{"an invalid tenant among several", true, nil, "team-a|../x", "", 401, nil},
		{"federation off refuses several", false, nil, "team-a|team-b", "", 401, nil},
		{"a credential grants its own tenant", true, creds, "", "s3cr3t", 200, []string{"team-a"}},
		{"a credential grants no other tenant", true, creds, "team-a|team-b", "s3cr3t", 401, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if c.header != "" {
				r.Header.Set(HeaderName, c.header)
			}
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			w := httptest.NewRecorder()
			mw := Middleware
			if c.federated {
				mw = FederatedMiddleware
			}
			mw(true, c.creds, h).ServeHTTP(w, r)
			require.Equal(t, c.code, w.Code, w.Body.String())
			require.Equal(t, c.tenants, seen)
		})
	}
}

func TestCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
tokens:
  - {token: s3cr3t, tenant: team-a}
users:
  - {username: grafana, password: pw, tenant: team-b}
`), 0o644))
	creds, err := LoadCredentials(file)
	require.NoError(t, err)
	var seen string
	h := Middleware(true, creds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = FromContext(r.Context()) }))
	for _, c := range []struct {
		name   string
		set    func(r *http.Request)
		code   int
		tenant string
	}{
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cr3t") }, 200, "team-a"},
		{"basic", func(r *http.Request) { r.SetBasicAuth("grafana", "pw") }, 200, "team-b"},
		{"header agrees", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer s3cr3t")
			r.Header.Set(HeaderName, "team-a")
		}, 200, "team-a"},
		{"header names another tenant", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer s3cr3t")
			r.Header.Set(HeaderName, "team-b")
		}, 401, ""},
		{"unknown token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401, ""},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("grafana", "x") }, 401, ""},
		{"header alone", func(r *http.Request) { r.Header.Set(HeaderName, "team-a") }, 401, ""},
		{"nothing", func(*http.Request) {}, 401, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			seen = ""
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			c.set(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, c.code, w.Code)
			require.Equal(t, c.tenant, seen, "the handler is reached only with a tenant")
		})
	}
	for _, bad := range []string{"tokens: [{token: x, tenant: ../etc}]", "tokens: [{token: '', tenant: a}]", "nonsense: 1"} {
		require.NoError(t, os.WriteFile(file, []byte(bad), 0o644))
		_, err := LoadCredentials(file)
		require.Error(t, err, bad)
	}
}

// FuzzValidate: whatever Validate accepts can be neither a path nor a
// path component that leaves its directory.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"team-a", ".", "..", "../x", "a/b", "%2e%2e", "a|b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) != nil {
			return
		}
		require.NotContains(t, id, "/")
		require.NotContains(t, id, "\x00")
		require.NotEqual(t, ".", id)
		require.NotEqual(t, "..", id)
		require.LessOrEqual(t, len(id), MaxLength)
	})
}
