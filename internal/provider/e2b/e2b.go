// Package e2b is a provider.Provider that runs sandboxes on E2B (e2b.dev)
// through its public API: E2B's REST control plane creates, inspects, lists
// and kills Firecracker microVMs; envd (E2B's in-sandbox daemon) installs
// and starts our own agent inside each; the agent is then reached through
// E2B's port proxy with an authenticated HTTP Upgrade (agent.DialUpgrade),
// so exec, files, sessions and ports are the same code as for every other
// provider. Preview: verified against e2bfake, a local fake of E2B's
// published API shapes, never against e2b.dev from here.
package e2b

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Defaults for Config's zero values.
const (
	DefaultAPIURL   = "https://api.e2b.dev"
	DefaultDomain   = "e2b.app"
	DefaultTemplate = "base"
	DefaultTimeout  = time.Hour
)

// MaxSandboxIDLen bounds our sandbox ids (they travel in E2B metadata).
const MaxSandboxIDLen = 64

// Metadata keys on every E2B sandbox we create (provider.Label* values).
const (
	metaManaged = provider.LabelManaged
	metaSandbox = provider.LabelSandbox
	metaServer  = provider.LabelServer
)

// Config configures a Provider.
type Config struct {
	Name     string // provider name; "e2b" if empty
	APIURL   string // E2B's control plane; DefaultAPIURL if empty
	APIKey   string // X-API-Key; required
	Domain   string // sandbox domain; DefaultDomain if empty (a create answer's domain wins)
	Template string // E2B template every sandbox starts from; DefaultTemplate if empty
	// DefaultImage is the server's default image (defaults.image): a spawn
	// that names no image gets it, and it then means Template. Any other
	// image must name a template as "e2b/<template>"; see templateFor.
	DefaultImage string
	Timeout      time.Duration // E2B kills a sandbox this long after its last refresh; DefaultTimeout if 0
	AgentPath    string        // the static linux/amd64 stacyvm-agent uploaded into each sandbox
	ServerID     string        // this server instance, recorded in metadata
	// RequestTimeout bounds one control-plane or envd request; 30s if 0.
	RequestTimeout time.Duration
	// ReadyTimeout bounds the wait for the agent after it is started; 60s if 0.
	ReadyTimeout time.Duration
	// TLS is the client TLS configuration (nil: system roots). Tests give
	// the fake's CA here.
	TLS *tls.Config
	// DialContext opens TCP connections (nil: a net.Dialer). Tests route
	// every E2B host name to the fake with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// agentPort is the TCP port our agent listens on inside the sandbox,
// reached as https://{agentPort}-{sandboxID}.{domain}. It avoids envd's
// 49983 and the code interpreter's 49999.
const agentPort = 49990

// agentPath is where the agent binary is written inside the sandbox.
const agentPath = "/usr/local/lib/stacyvm/stacyvm-agent"

// Provider runs sandboxes on E2B. Safe for concurrent use.
type Provider struct {
	cfg  Config
	api  *api
	hc   *http.Client // envd calls
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	log  *slog.Logger

	mu     sync.Mutex
	agents map[string]*agentEntry // by our sandbox id
}

type agentEntry struct {
	c         *agent.Client
	runtimeID string
	refreshed time.Time // last timeout refresh sent to E2B
}

// New validates cfg. It makes no network call: Health does.
func New(cfg Config, log *slog.Logger) (*Provider, error) {
	if cfg.Name == "" {
		cfg.Name = "e2b"
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.Template == "" {
		cfg.Template = DefaultTemplate
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.APIKey == "" {
		return nil, errs.New(errs.Invalid, "e2b provider: api_key is required")
	}
	if cfg.ServerID == "" {
		return nil, errs.New(errs.Invalid, "e2b provider: server id is required")
	}
	if cfg.Timeout < time.Minute {
		return nil, errs.New(errs.Invalid, "e2b provider: timeout must be at least 1m (got %s)", cfg.Timeout)
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, errs.New(errs.Invalid, "e2b provider: api_url %q is not an http(s) URL", cfg.APIURL)
	}
	if strings.ContainsAny(cfg.Domain, "/:@ ") {
		return nil, errs.New(errs.Invalid, "e2b provider: domain %q must be a bare host name", cfg.Domain)
	}
	if log == nil {
		log = slog.Default()
	}
	dial := cfg.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	tr := &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     tlsConfig(cfg.TLS, ""),
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	hc := &http.Client{Transport: tr}
	return &Provider{
		cfg:    cfg,
		api:    &api{base: base, key: cfg.APIKey, hc: hc, timeout: cfg.RequestTimeout},
		hc:     hc,
		dial:   dial,
		log:    log,
		agents: map[string]*agentEntry{},
	}, nil
}

// tlsConfig clones base (nil: defaults) for serverName over HTTP/1.1,
// which upgrades need.
func tlsConfig(base *tls.Config, serverName string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		c = base.Clone()
	}
	if serverName != "" {
		c.ServerName = serverName
	}
	c.NextProtos = []string{"http/1.1"}
	return c
}

// Close drops cached agent clients; sandboxes keep running.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.agents {
		e.c.Close()
		delete(p.agents, id)
	}
	p.hc.CloseIdleConnections()
	return nil
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities implements provider.Provider: Firecracker microVMs, which
// are a security boundary; egress on (bridge) or off (none).
func (p *Provider) Capabilities() provider.Capabilities { return DeclaredCapabilities() }

// DeclaredCapabilities are the e2b provider's capabilities, for callers
// that have no Provider (certification, docs).
func DeclaredCapabilities() provider.Capabilities {
	return provider.Capabilities{
		Isolation:    provider.IsolationVM,
		NetworkModes: []string{provider.NetworkNone, provider.NetworkBridge},
		Features:     []string{"exec", "files"},
		Boundary:     true,
	}
}

// Health lists our sandboxes (one cheap authenticated call) and checks the
// agent binary is present.
func (p *Provider) Health(ctx context.Context) error {
	if _, err := os.Stat(p.cfg.AgentPath); err != nil {
		return errs.Wrap(errs.Unavailable, err, "e2b provider: agent binary %s missing", p.cfg.AgentPath)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := p.api.listSandboxes(ctx, p.ownMeta(""))
	return err
}

// ownMeta is the metadata filter of this server's sandboxes (one sandbox
// when id is set).
func (p *Provider) ownMeta(id string) map[string]string {
	m := map[string]string{metaManaged: "true", metaServer: p.cfg.ServerID}
	if id != "" {
		m[metaSandbox] = id
	}
	return m
}

// agentToken derives the shared secret of one sandbox's agent from the API
// key, so nothing secret is persisted in handles and a restarted server
// (same key) reaches the agents it started. Anyone holding the API key can
// already run commands in the sandbox through envd, so the token grants
// nothing more. Rotating the key makes older sandboxes unreachable to us
// (they are then destroyed by reconcile or their E2B timeout).
func (p *Provider) agentToken(sandboxID, runtimeID string) string {
	m := hmac.New(sha256.New, []byte(p.cfg.APIKey))
	m.Write([]byte("stacyvm-e2b-agent-token\x00" + p.cfg.ServerID + "\x00" + sandboxID + "\x00" + runtimeID))
	return hex.EncodeToString(m.Sum(nil))
}

var (
	_ provider.Provider          = (*Provider)(nil)
	_ interface{ Close() error } = (*Provider)(nil)
)
