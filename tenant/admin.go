package tenant

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/orrery/orrery/apierr"
)

// Admins are the operators' credentials: they open the admin endpoints
// (POST /ingester/shutdown, /debug/pprof) and name no tenant, so a tenant's
// credential never opens an admin endpoint and an admin's never reads or
// writes a tenant's data, except to delete it (AdminTenantMiddleware). See docs/tenancy.md for the file format.
type Admins struct {
	creds *Credentials
}

type adminsFile struct {
	Tokens []struct {
		Token string `yaml:"token"`
	} `yaml:"tokens"`
	Users []struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"users"`
}

// adminMark is what an admin credential maps to inside Credentials. It is
// not a valid tenant ID, so it can never be mistaken for one.
const adminMark = "|admin|"

// LoadAdmins reads an admin tokens file. It must hold at least one
// credential: an empty file would lock every admin endpoint by accident.
func LoadAdmins(path string) (*Admins, error) {
	var f adminsFile
	if err := readStrictYAML(path, "admin tokens file", &f); err != nil {
		return nil, err
	}
	c := &Credentials{tokens: map[[32]byte]string{}, users: map[string]user{}}
	for _, t := range f.Tokens {
		if t.Token == "" {
			return nil, errors.New("auth: admin tokens file: a token is empty")
		}
		c.tokens[hash(t.Token)] = adminMark
	}
	for _, u := range f.Users {
		if u.Username == "" || u.Password == "" {
			return nil, errors.New("auth: admin tokens file: a user has no username or password")
		}
		c.users[u.Username] = user{password: hash(u.Password), tenant: adminMark}
	}
	if len(c.tokens)+len(c.users) == 0 {
		return nil, fmt.Errorf("auth: admin tokens file %s holds no token and no user", path)
	}
	return &Admins{creds: c}, nil
}

// AdminMiddleware lets a request through to an admin endpoint only with an
// admin credential, when admins is not nil. Without admins, required (the
// process runs with -auth.enabled) refuses every request: with tenants
// authenticated, an endpoint that stops the process must not be open to
// anyone who reaches the port. Without either, admin endpoints are open, as
// everything else is on an unauthenticated process.
//
// Refusals are 401 and touch nothing; the process keeps running.
func AdminMiddleware(required bool, admins *Admins, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := admins.authorize(r, required); err != nil {
			http.Error(w, err.Error(), apierr.HTTPStatus(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AdminTenantMiddleware is AdminMiddleware for the admin endpoints that
// act on one tenant's data (deletion): the admin credential authorizes,
// and the X-Scope-OrgID header names the tenant, which must be one valid
// ID (without -auth.enabled an absent header is the anonymous tenant, as
// for every other request).
func AdminTenantMiddleware(required bool, admins *Admins, next http.Handler) http.Handler {
	return AdminMiddleware(required, admins, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderName)
		if id == "" && !required {
			id = Anonymous
		}
		if err := Validate(id); err != nil {
			http.Error(w, fmt.Sprintf("admin endpoint: the %s header must name the tenant: %s", HeaderName, err), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithID(r.Context(), id)))
	}))
}

func (a *Admins) authorize(r *http.Request, required bool) error {
	if a == nil {
		if required {
			return apierr.New(apierr.Unauthorized, "admin endpoints are closed: -auth.enabled is set and no -auth.admin-tokens-file names an admin credential")
		}
		return nil
	}
	if _, err := a.creds.tenantOf(r); err != nil {
		return apierr.New(apierr.Unauthorized, "admin endpoint: missing or invalid admin credential: send Authorization: Bearer <admin token> or an admin's basic auth")
	}
	return nil
}
