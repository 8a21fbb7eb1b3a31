// Package e2bfake is a local fake of E2B (e2b.dev) that follows E2B's
// published API shapes, for testing the e2b provider without the internet:
// the REST control plane (X-API-Key, /sandboxes...), envd's file upload and
// process start on port 49983, and the port proxy that routes
// {port}-{sandboxID}.{domain} to a port inside the sandbox. Each fake
// sandbox is a real Docker container of a local image (never pulled), so
// processes, files and ports are real; E2B's Firecracker isolation is not.
// Timeouts are enforced: a sandbox is killed when its timeout passes, as
// E2B does.
package e2bfake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// Config configures a fake.
type Config struct {
	APIKey string // the one accepted X-API-Key
	Domain string // sandbox domain, e.g. "e2b.test"; the API answers on any other host
	// Templates maps E2B template ids to local Docker images.
	Templates map[string]string
	// Labels are put on every container (tests remove leftovers by label).
	Labels map[string]string
	// Secure makes every sandbox require envd's X-Access-Token.
	Secure bool
	Logger *slog.Logger
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	docker *client.Client
	ln     net.Listener
	srv    *http.Server
	pool   *x509.CertPool
	log    *slog.Logger

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	requests  []Request
	closed    bool
	wg        sync.WaitGroup // background process drains
}

// Request is one control-plane or envd request the fake received, for
// tests of request shapes.
type Request struct {
	Host, Method, Path, RawQuery string
	Header                       http.Header
	Body                         []byte // control plane and process start only
}

// Start starts a fake on a loopback port with a fresh CA and a wildcard
// certificate for the API and *.Domain.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Domain == "" {
		cfg.Domain = "e2b.test"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	cert, pool, err := selfSigned(cfg.Domain)
	if err != nil {
		cli.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cli.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, docker: cli, pool: pool, log: cfg.Logger, sandboxes: map[string]*sandbox{}}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1 only, as the proxy upgrades connections.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		ErrorLog:     slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go s.srv.ServeTLS(ln, "", "")
	return s, nil
}

// Addr is the fake's listening address (every E2B host name resolves here).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CertPool holds the fake's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// APIURL is the control plane's URL.
func (s *Server) APIURL() string { return "https://api." + s.cfg.Domain }

// DialContext connects to the fake whatever the address: a resolver that
// maps api.{domain} and *.{domain} to the fake.
func (s *Server) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.Addr())
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// SandboxCount is the number of live fake sandboxes.
func (s *Server) SandboxCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sandboxes)
}

// Sandbox returns what the fake knows of a live sandbox (tests read
// timeouts, metadata, internet access).
func (s *Server) Sandbox(id string) (SandboxInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.sandboxes[id]
	if sb == nil {
		return SandboxInfo{}, false
	}
	return SandboxInfo{ID: sb.id, TemplateID: sb.templateID, Metadata: sb.metadata, EnvVars: sb.envVars,
		EndAt: sb.endAt, AllowInternet: sb.allowInternet, Container: sb.container}, true
}

// SandboxInfo is a fake sandbox's state.
type SandboxInfo struct {
	ID, TemplateID, Container string
	Metadata, EnvVars         map[string]string
	EndAt                     time.Time
	AllowInternet             bool
}

// Close kills every sandbox and stops the server.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	sbs := make([]*sandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		sbs = append(sbs, sb)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sb := range sbs {
		s.kill(ctx, sb.id)
	}
	err := s.srv.Close()
	s.wg.Wait()
	s.docker.Close()
	return err
}

// ServeHTTP routes by Host: {port}-{id}.{domain} is a sandbox port (envd on
// 49983), anything else the control plane.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if sub, ok := strings.CutSuffix(host, "."+s.cfg.Domain); ok && sub != "api" {
		portS, id, ok := strings.Cut(sub, "-")
		port, err := strconv.Atoi(portS)
		if !ok || err != nil || port <= 0 || port > 65535 {
			writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "invalid sandbox host " + host})
			return
		}
		if port == envdPort {
			s.record(r, false)
			s.serveEnvd(w, r, id)
			return
		}
		s.serveProxy(w, r, id, port)
		return
	}
	s.record(r, true)
	s.serveAPI(w, r)
}

func (s *Server) record(r *http.Request, body bool) {
	rec := Request{Host: r.Host, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

// apiError is E2B's Error schema (spec/openapi.yml components.schemas.Error).
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// selfSigned makes a CA and a leaf for *.domain, api.domain and 127.0.0.1.
func selfSigned(domain string) (tls.Certificate, *x509.CertPool, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2bfake CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "*." + domain},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames:    []string{"*." + domain, domain},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool, nil
}

var errGone = errors.New("sandbox is gone")
