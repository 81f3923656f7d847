package tenant

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Credentials maps bearer tokens and basic-auth users to tenants: the
// simple case of hosting Orrery without a gateway in front. See
// docs/tenancy.md for the file format.
type Credentials struct {
	tokens map[[32]byte]string
	users  map[string]user
}

type user struct {
	password [32]byte
	tenant   string
}

type credentialsFile struct {
	Tokens []struct {
		Token  string `yaml:"token"`
		Tenant string `yaml:"tenant"`
	} `yaml:"tokens"`
	Users []struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
		Tenant   string `yaml:"tenant"`
	} `yaml:"users"`
}

// LoadCredentials reads a tokens file. Every tenant in it must be valid.
func LoadCredentials(path string) (*Credentials, error) {
	var f credentialsFile
	if err := readStrictYAML(path, "tokens file", &f); err != nil {
		return nil, err
	}
	c := &Credentials{tokens: map[[32]byte]string{}, users: map[string]user{}}
	for _, t := range f.Tokens {
		if t.Token == "" {
			return nil, errors.New("auth: tokens file: a token is empty")
		}
		if err := Validate(t.Tenant); err != nil {
			return nil, fmt.Errorf("auth: tokens file: %w", err)
		}
		c.tokens[hash(t.Token)] = t.Tenant
	}
	for _, u := range f.Users {
		if u.Username == "" || u.Password == "" {
			return nil, errors.New("auth: tokens file: a user has no username or password")
		}
		if err := Validate(u.Tenant); err != nil {
			return nil, fmt.Errorf("auth: tokens file: user %q: %w", u.Username, err)
		}
		c.users[u.Username] = user{password: hash(u.Password), tenant: u.Tenant}
	}
	return c, nil
}

// readStrictYAML decodes the YAML file at path into v, refusing unknown
// keys: a misspelt key in a credentials file must not silently drop a
// credential. what names the file in errors.
func readStrictYAML(path, what string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("auth: read %s: %w", what, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("auth: parse %s %s: %w", what, path, err)
	}
	return nil
}

// errBadCredentials says nothing about which part was wrong.
var errBadCredentials = errors.New("missing or invalid credentials: send Authorization: Bearer <token> or basic auth")

// tenantOf returns the tenant of the request's credential. Secrets are
// compared as hashes in constant time, so timing tells nothing about them.
func (c *Credentials) tenantOf(r *http.Request) (string, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		u, known := c.users[user]
		h := hash(pass)
		if !known || subtle.ConstantTimeCompare(h[:], u.password[:]) != 1 {
			return "", errBadCredentials
		}
		return u.tenant, nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return "", errBadCredentials
	}
	h := hash(token)
	for known, tenant := range c.tokens {
		if subtle.ConstantTimeCompare(h[:], known[:]) == 1 {
			return tenant, nil
		}
	}
	return "", errBadCredentials
}

// hash is how secrets are kept and compared: never in the clear.
func hash(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }
