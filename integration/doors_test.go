//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/orrery/orrery/loadgen"
	"github.com/orrery/orrery/proto/ingesterpb"
)

// Scenario 16 of RELIABILITY.md, internal doors: with auth on, every admin
// endpoint, pprof, gRPC between components and gossip refuse a caller
// without the right credential, and the process keeps running.

// TestAdminEndpointsNeedAdminCredential: with -auth.enabled, POST
// /ingester/shutdown without a credential, with a tenant's token or with
// only a tenant header is refused with 401, and the process keeps serving
// writes; the admin's token shuts it down. pprof is 404 without
// -http.pprof-enabled, and admin-only with it.
func TestAdminEndpointsNeedAdminCredential(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens: [{token: token-a, tenant: team-a}]\n"), 0o600))
	admins := filepath.Join(dir, "admins.yaml")
	require.NoError(t, os.WriteFile(admins, []byte("tokens: [{token: op-secret}]\n"), 0o600))
	auth := []string{"-auth.enabled=true", "-auth.tokens-file=" + tokens}

	t.Run("shutdown", func(t *testing.T) {
		o := startOrrery(t, t.TempDir(), append(auth, "-auth.admin-tokens-file="+admins)...)
		gen := loadgen.New(1, 1)
		writes := 0
		push := func() {
			t.Helper()
			raw := gen.AppendRequest(nil, 0, gen.Len(), writes, time.Now().Add(time.Duration(writes-60)*time.Second).UnixMilli())
			code, body := authed(t, http.MethodPost, o.url("/api/v1/push"), "token-a", loadgen.Compress(nil, raw))
			require.Equal(t, http.StatusNoContent, code, body)
			writes++
		}
		push()
		for name, set := range map[string]func(*http.Request){
			"no credential":      func(*http.Request) {},
			"a tenant's token":   func(r *http.Request) { r.Header.Set("Authorization", "Bearer token-a") },
			"a tenant header":    func(r *http.Request) { r.Header.Set("X-Scope-OrgID", "team-a") },
			"a made-up token":    func(r *http.Request) { r.Header.Set("Authorization", "Bearer op-secret2") },
			"admin token as pwd": func(r *http.Request) { r.SetBasicAuth("admin", "op-secret") },
		} {
			code, body := requestWith(t, http.MethodPost, o.url("/ingester/shutdown"), set)
			require.Equal(t, http.StatusUnauthorized, code, "%s: %s", name, body)
			push() // still running and taking writes
		}
		code, _ := requestWith(t, http.MethodGet, o.url("/ready"), func(*http.Request) {})
		require.Equal(t, http.StatusOK, code, "a refused shutdown left the process ready")
		require.Equal(t, "ACTIVE", ringStateOf(t, o, "orrery-test"), "a refused shutdown left the ring untouched")
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap"} {
			code, _ := requestWith(t, http.MethodGet, o.url(path), bearerAuth("op-secret"))
			require.Equal(t, http.StatusNotFound, code, "%s without -http.pprof-enabled", path)
		}

		code, body := requestWith(t, http.MethodPost, o.url("/ingester/shutdown"), bearerAuth("op-secret"))
		require.Equal(t, http.StatusOK, code, body)
		waitProcessExit(t, o.process, 60*time.Second)
	})

	t.Run("no admin file closes admin endpoints", func(t *testing.T) {
		o := startOrrery(t, t.TempDir(), append(auth, "-http.pprof-enabled=true")...)
		for _, tok := range []string{"", "token-a"} {
			code, body := requestWith(t, http.MethodPost, o.url("/ingester/shutdown"), bearerAuth(tok))
			require.Equal(t, http.StatusUnauthorized, code, body)
			code, body = requestWith(t, http.MethodGet, o.url("/debug/pprof/"), bearerAuth(tok))
			require.Equal(t, http.StatusUnauthorized, code, body)
		}
		code, _ := requestWith(t, http.MethodGet, o.url("/ready"), func(*http.Request) {})
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("pprof is admin-only when enabled", func(t *testing.T) {
		o := startOrrery(t, t.TempDir(), append(auth, "-auth.admin-tokens-file="+admins, "-http.pprof-enabled=true")...)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			for _, tok := range []string{"", "token-a"} {
				code, _ := requestWith(t, http.MethodGet, o.url(path), bearerAuth(tok))
				require.Equal(t, http.StatusUnauthorized, code, "%s with %q", path, tok)
			}
			code, _ := requestWith(t, http.MethodGet, o.url(path), bearerAuth("op-secret"))
			require.Equal(t, http.StatusOK, code, path)
		}
	})
}

// TestGRPCMutualTLS: a cluster whose components speak gRPC with mutual TLS
// writes and reads end to end. An ingester refuses a caller in plaintext,
// over TLS without a client certificate, and with a certificate from
// another CA, whether it pushes or hands chunks over in another tenant's
// name; nothing it sent is stored. The same push with the cluster's
// certificate goes through, and so does a handover between ingesters.
func TestGRPCMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newThrowawayCA(t, "orrery-test-ca")
	good := ca.issue(t, dir, "orrery-node")
	other := newThrowawayCA(t, "another-ca")
	rogue := other.issue(t, dir, "rogue")
	caPath := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caPath, ca.certPEM, 0o600))

	c := newCluster(t, 1)
	ids := []string{"ing1", "ing2", "dist", "quer"}
	for _, id := range ids {
		c.extra[id] = []string{
			"-grpc.tls-cert-path=" + good.cert, "-grpc.tls-key-path=" + good.key, "-grpc.tls-client-ca-path=" + caPath,
			"-ingester.client.tls-enabled=true", "-ingester.client.tls-ca-path=" + caPath,
			"-ingester.client.tls-cert-path=" + good.cert, "-ingester.client.tls-key-path=" + good.key,
			// As in deploy/kubernetes: one name for every ingester, dialed by IP.
			"-ingester.client.tls-server-name=orrery-ingester",
		}
	}
	for _, id := range ids {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2")
	c.waitRing("quer", "ing1", "ing2")

	gen := loadgen.New(3, 2)
	send := loadgen.NewClient(c.members["dist"].url("/api/v1/push"), "", 10*time.Second)
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	for step := 0; step < 10; step++ {
		raw := gen.AppendRequest(nil, 0, gen.Len(), step, end.Add(time.Duration(step-9)*genInterval).UnixMilli())
		require.NoError(t, send.Send(ctxTimeout(t, 10*time.Second), loadgen.Compress(nil, raw)), "step %d", step)
	}
	at := fmt.Sprint(end.Unix())
	countQuery := "/prometheus/api/v1/query?query=" + url.QueryEscape(`count({__name__=~".+"})`) + "&time=" + at
	code, body := getAs(t, c.members["quer"].url(countQuery), "anonymous")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, fmt.Sprintf(`"%d"]`, gen.Len()), "every series is readable through mutual TLS")

	ing := fmt.Sprintf("127.0.0.1:%d", c.members["ing1"].grpc)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.certPEM)
	rogueCert, err := tls.LoadX509KeyPair(rogue.cert, rogue.key)
	require.NoError(t, err)
	goodCert, err := tls.LoadX509KeyPair(good.cert, good.key)
	require.NoError(t, err)
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                   insecure.NewCredentials(),
		"TLS without a certificate":   credentials.NewTLS(&tls.Config{RootCAs: roots}),
		"a certificate of another CA": credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{rogueCert}}),
	} {
		t.Run(name, func(t *testing.T) {
			cl := dialIngesterWith(t, ing, creds)
			_, err := cl.Push(grpcAsTenant(t, "victim"), &ingesterpb.PushRequest{Series: onePushSeries(end.UnixMilli())})
			require.Error(t, err, "push refused")
			t.Logf("push: %v", err)
			stream, err := cl.TransferChunks(grpcAsTenant(t, "victim"))
			if err == nil {
				err = stream.Send(&ingesterpb.TransferChunksRequest{Series: []*ingesterpb.ChunkSeries{{
					Labels: []*ingesterpb.LabelPair{{Name: "__name__", Value: "injected"}},
				}}})
				if err == nil {
					_, err = stream.CloseAndRecv()
				}
			}
			require.Error(t, err, "handover refused")
			t.Logf("transfer: %v", err)
			// Pushdown's door, which evaluates queries, is the same server.
			pd := dialPushdownWith(t, ing, creds)
			_, err = pd.SeriesDigests(grpcAsTenant(t, "victim"), &ingesterpb.DigestRequest{StartMs: 0, EndMs: end.UnixMilli(),
				Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}}})
			require.Error(t, err, "digests refused")
			_, err = pd.Evaluate(grpcAsTenant(t, "victim"), &ingesterpb.EvaluateRequest{Query: `count({__name__=~".+"})`, StartMs: end.UnixMilli(), SeriesHashes: []uint64{1}})
			require.Error(t, err, "evaluation refused")
		})
	}
	// The same call with the cluster's certificate goes through: the
	// refusals above are about the certificate, not the request.
	cl := dialIngesterWith(t, ing, credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{goodCert}}))
	_, err = cl.Push(grpcAsTenant(t, "control"), &ingesterpb.PushRequest{Series: onePushSeries(end.UnixMilli())})
	require.NoError(t, err)

	code, body = getAs(t, c.members["quer"].url(countQuery), "control")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"1"]`, "the control push is stored")
	code, body = getAs(t, c.members["quer"].url(countQuery), "victim")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"result":[]`, "nothing a refused caller sent is stored")
	for _, id := range []string{"ing1", "ing2"} {
		require.Zero(t, metricValue(t, c.members[id], "orrery_ingester_handover_chunks_received_total"), id)
	}

	// Ingesters dial each other too: a leaving one hands its series over
	// through mutual TLS, and every series stays readable.
	c.members["ing2"].stop(t)
	c.waitRing("quer", "ing1")
	require.Positive(t, metricValue(t, c.members["ing1"], "orrery_ingester_handover_chunks_received_total"), "ing2 handed its chunks over")
	code, body = getAs(t, c.members["quer"].url(countQuery), "anonymous")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, fmt.Sprintf(`"%d"]`, gen.Len()), "every series is readable after the handover")
}

// TestGossipKeyKeepsStrangersOut: members sharing -memberlist.key-file form
// a ring. An ingester without the key and one with another key try to join
// the seed: no real member ever lists them, in the ring or in memberlist,
// the owners' shares do not change, and the strangers read no ring. A
// member with the key that joins after them still gets in.
func TestGossipKeyKeepsStrangersOut(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string, fill byte) string {
		path := filepath.Join(dir, name)
		key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(fill)), 32)))
		require.NoError(t, os.WriteFile(path, []byte(key+"\n"), 0o600))
		return path
	}
	keyFlag := "-memberlist.key-file=" + writeKey("gossip.key", 'k')
	c := newCluster(t, 1)
	for _, id := range []string{"ing1", "ing2", "dist", "quer"} {
		c.extra[id] = []string{keyFlag}
	}
	c.extra["ing8"] = []string{"-memberlist.key-file=" + writeKey("wrong.key", 'w')}
	for _, id := range []string{"ing1", "ing2", "dist"} {
		c.add(id)
	}
	c.waitRing("dist", "ing1", "ing2")
	before := c.ring("dist")

	for _, id := range []string{"ing8", "ing9"} { // ing9 has no key
		c.add(id)
	}
	for _, id := range []string{"ing8", "ing9"} {
		waitLogLine(t, c.members[id].process, "join failed, retrying", 30*time.Second)
	}
	c.add("quer")
	c.waitRing("quer", "ing1", "ing2")

	for _, id := range []string{"ing1", "ing2", "dist", "quer"} {
		r := c.ring(id)
		require.NotContains(t, r, "ing8", "%s lists the member with the wrong key", id)
		require.NotContains(t, r, "ing9", "%s lists the member without a key", id)
		_, page := rawGet(t, c.members[id].url("/memberlist"))
		require.NotContains(t, page, "ing8", id)
		require.NotContains(t, page, "ing9", id)
	}
	after := c.ring("dist")
	for _, id := range []string{"ing1", "ing2"} {
		require.Equal(t, before[id].Owned, after[id].Owned, "%s's share did not change", id)
	}
	for _, id := range []string{"ing8", "ing9"} {
		r := c.ring(id)
		require.Len(t, r, 1, "%s reads no ring but its own entry: %v", id, r)
	}
}

func bearerAuth(token string) func(*http.Request) {
	return func(r *http.Request) {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	}
}

func requestWith(t *testing.T, method, u string, set func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	set(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func ringStateOf(t *testing.T, o *orrery, id string) string {
	t.Helper()
	_, body := rawGet(t, o.url("/ring?format=json"))
	var r struct {
		Members []ringMember `json:"members"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	for _, m := range r.Members {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

// waitProcessExit waits for p to exit by itself.
func waitProcessExit(t *testing.T, p *process, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "%s exited", p.name)
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s", p.name, d)
	}
}

// waitLogLine waits until p's log holds s.
func waitLogLine(t *testing.T, p *process, s string, d time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(p.log)
		return err == nil && strings.Contains(string(b), s)
	}, d, 100*time.Millisecond, "%s logs %q", p.name, s)
}

func dialIngesterWith(t *testing.T, addr string, creds credentials.TransportCredentials) ingesterpb.IngesterClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return ingesterpb.NewIngesterClient(conn)
}

func dialPushdownWith(t *testing.T, addr string, creds credentials.TransportCredentials) ingesterpb.PushdownClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return ingesterpb.NewPushdownClient(conn)
}

func grpcAsTenant(t *testing.T, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctxTimeout(t, 10*time.Second), "x-scope-orgid", tenant)
}

// onePushSeries is a push body of one series with one sample at ts.
func onePushSeries(ts int64) []byte {
	ls := labels.FromStrings("__name__", "injected", "job", "doors")
	buf := ingesterpb.AppendSeriesHeader(nil, ingesterpb.AppendLabels(nil, ls), 1)
	return ingesterpb.AppendSample(buf, ts, 1)
}

// throwawayCA is a throwaway certificate authority, made fresh for each test so
// that no private key is ever committed.
type throwawayCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newThrowawayCA(t *testing.T, name string) *throwawayCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &throwawayCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type certPaths struct{ cert, key string }

// issue writes a certificate for 127.0.0.1, localhost and orrery-ingester, good for both
// server and client authentication, and its key, into dir.
func (ca *throwawayCA) issue(t *testing.T, dir, name string) certPaths {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost", "orrery-ingester"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	files := certPaths{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem")}
	require.NoError(t, os.WriteFile(files.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(files.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return files
}

func randomSerial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	return n
}
