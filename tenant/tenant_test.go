package tenant

import (
	"net/http"
	"net/http/httptest"
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
		Middleware(c.required, http.HandlerFunc(h)).ServeHTTP(w, r)
		require.Equal(t, c.code, w.Code)
		require.Equal(t, c.tenant, seen)
	}
}
