package worker_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
	"github.com/stacyvm/stacyvm/internal/worker"
)

const token = "worker-test-token"

// agentPath is the agent built once by TestMain; read-only afterwards.
var agentPath string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-worker-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if agentPath, err = providertest.BuildAgent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// newMock is the worker's local provider in these tests: real processes
// and a real agent, no Docker needed (the docker-backed suite is in
// internal/provider/remote).
func newMock(t *testing.T) *mock.Provider {
	t.Helper()
	dir, err := os.MkdirTemp("", "svw-")
	if err != nil {
		t.Fatal(err)
	}
	p, err := mock.New(context.Background(), mock.Config{DataDir: dir, AgentPath: agentPath, ServerID: "worker-test"}, nil)
	if err != nil {
		t.Fatalf("mock.New: %v", err)
	}
	t.Cleanup(func() {
		p.Close()
		os.RemoveAll(dir)
	})
	return p
}

func newWorker(t *testing.T, p provider.Provider) *worker.Server {
	t.Helper()
	w, err := worker.New(worker.Config{Provider: p, Tokens: []string{"old-token", token}, Version: "test"}, nil)
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestServer_WrongTokenIs401OnEveryRoute(t *testing.T) {
	srv := httptest.NewServer(newWorker(t, newMock(t)))
	defer srv.Close()
	routes := []struct{ method, path string }{
		{"GET", "/v1/info"}, {"GET", "/v1/health"}, {"GET", "/v1/sandboxes"}, {"POST", "/v1/sandboxes"},
		{"GET", "/v1/sandboxes/sb-1"}, {"DELETE", "/v1/sandboxes/sb-1"}, {"GET", "/v1/sandboxes/sb-1/stats"},
		{"GET", "/v1/sandboxes/sb-1/logs"}, {"GET", "/v1/sandboxes/sb-1/agent"}, {"GET", "/no/such/route"},
	}
	auths := map[string]string{
		"none": "", "wrong token": "Bearer nope", "empty bearer": "Bearer ", "basic scheme": "Basic " + token,
		"token without scheme": token, "token with a suffix": "Bearer " + token + "x", "lower-case scheme": "bearer " + token,
	}
	for _, rt := range routes {
		for name, auth := range auths {
			req, _ := http.NewRequest(rt.method, srv.URL+rt.path, strings.NewReader(`{}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", remote.RelayProtocol)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", rt.method, rt.path, err)
			}
			var eb remote.ErrorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || eb.Code != errs.Unauthorized.Code() || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s: %d %q, want 401 %s with WWW-Authenticate", rt.method, rt.path, name, resp.StatusCode, eb.Code, errs.Unauthorized.Code())
			}
		}
	}
	// Either configured token works (rotation).
	for _, tok := range []string{token, "old-token"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/info", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/info with a configured token: %d, want 200", resp.StatusCode)
		}
	}
}

func TestNew_RefusesMissingTokenAndRemoteProvider(t *testing.T) {
	if _, err := worker.New(worker.Config{Provider: newMock(t), Tokens: []string{" ", ""}}, nil); errs.ClassOf(err) != errs.Invalid {
		t.Errorf("worker.New without a token = %v, want Invalid", err)
	}
	rp, err := remote.New(context.Background(), remote.Config{URL: "http://127.0.0.1:1", Token: "x", DialTimeout: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.New(worker.Config{Provider: rp, Tokens: []string{token}}, nil); errs.ClassOf(err) != errs.Invalid {
		t.Errorf("worker.New over a remote provider = %v, want Invalid", err)
	}
}

func TestRelay_BadRequests(t *testing.T) {
	srv := httptest.NewServer(newWorker(t, newMock(t)))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		path    string
		upgrade string
		status  int
		code    string
	}{
		{"no upgrade header", "/v1/sandboxes/sb-abc/agent", "", http.StatusBadRequest, errs.Invalid.Code()},
		{"another upgrade protocol", "/v1/sandboxes/sb-abc/agent", "websocket", http.StatusBadRequest, errs.Invalid.Code()},
		{"unknown sandbox", "/v1/sandboxes/sb-abc/agent", remote.RelayProtocol, http.StatusNotFound, errs.NotFound.Code()},
		{"bad sandbox id", "/v1/sandboxes/-x/agent", remote.RelayProtocol, http.StatusBadRequest, errs.Invalid.Code()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if tc.upgrade != "" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", tc.upgrade)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb remote.ErrorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			if resp.StatusCode != tc.status || eb.Code != tc.code {
				t.Errorf("got %d %q (%s), want %d %s", resp.StatusCode, eb.Code, eb.Message, tc.status, tc.code)
			}
		})
	}
}

// TestServer_MTLS: with a client CA configured, only clients presenting a
// certificate of that CA get through; the agent relay works over TLS.
func TestServer_MTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "worker test CA")
	other := newCA(t, "some other CA")
	ca.writeCA(t, filepath.Join(dir, "ca.pem"))
	ca.issue(t, dir, "server", true)
	ca.issue(t, dir, "client", false)
	other.issue(t, dir, "stranger", false)

	tc, err := worker.ServerTLS(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	srv := httptest.NewUnstartedServer(newWorker(t, newMock(t)))
	srv.TLS = tc
	srv.StartTLS()
	defer srv.Close()
	url := srv.URL

	open := func(cert string) *remote.Provider {
		cfg := remote.Config{URL: url, Token: token, CAFile: filepath.Join(dir, "ca.pem"), DialTimeout: 2 * time.Second}
		if cert != "" {
			cfg.CertFile, cfg.KeyFile = filepath.Join(dir, cert+".pem"), filepath.Join(dir, cert+"-key.pem")
		}
		p, err := remote.New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatalf("remote.New(%s): %v", cert, err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, cert := range map[string]string{"no client certificate": "", "certificate of another CA": "stranger"} {
		if err := open(cert).Health(ctx); errs.ClassOf(err) != errs.Unavailable {
			t.Errorf("Health with %s = %v, want Unavailable", name, err)
		}
	}
	noCA, err := remote.New(ctx, remote.Config{URL: url, Token: token, CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer noCA.Close()
	if err := noCA.Health(ctx); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("Health without trusting the worker's CA = %v, want Unavailable", err)
	}

	p := open("client")
	if err := p.Health(ctx); err != nil {
		t.Fatalf("Health with a client certificate: %v", err)
	}
	if got := p.Capabilities().Isolation; got != provider.IsolationNone {
		t.Errorf("isolation = %q, want the mock's %q", got, provider.IsolationNone)
	}
	h, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "host"})
	if err != nil {
		t.Fatalf("Create over mTLS: %v", err)
	}
	defer p.Destroy(context.Background(), h)
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo over-mtls"}}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.String() != "over-mtls\n" {
		t.Errorf("exec through the relay over mTLS = %q, %+v, %v; want %q", out.String(), res, err, "over-mtls\n")
	}
}

// TestServer_CloseEndsRelays: Close ends running relays and leaves no
// goroutine behind; a destroyed sandbox's relays end too.
func TestServer_CloseEndsRelays(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	local := newMock(t)
	w, err := worker.New(worker.Config{Provider: local, Tokens: []string{token}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	p, err := remote.New(context.Background(), remote.Config{URL: srv.URL, Token: token}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "host"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	c, _ := p.Agent(ctx, h)
	sess, err := c.OpenSession(ctx, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/cat"}}})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := sess.Wait(io.Discard, io.Discard); done <- err }()
	w.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("session Wait after worker Close = nil, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("session still running 5s after the worker's Close")
	}
	sess.Close()
	// The sandbox itself is untouched; destroy it through a new worker.
	w2, err := worker.New(worker.Config{Provider: local, Tokens: []string{token}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = w2
	if err := p.Destroy(ctx, h); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	p.Close()
	srv.Close()
	w2.Close()
	local.Close()
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}
}

func (ca testCA) writeCA(t *testing.T, path string) {
	t.Helper()
	writePEM(t, path, "CERTIFICATE", ca.cert.Raw)
}

// issue writes <dir>/<name>.pem and <name>-key.pem: a server certificate
// for 127.0.0.1 or a client certificate.
func (ca testCA) issue(t *testing.T, dir, name string, server bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
