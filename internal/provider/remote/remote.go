// Package remote is the provider that runs sandboxes on a worker (`stacyvm
// worker`, or any server speaking docs/worker-protocol.md) over HTTP. It is
// just another implementation of provider.Provider: error classes survive
// the wire, handles are serialisable, and its agent clients reach the
// sandbox's agent through the worker's relay, byte for byte.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// DefaultName is the provider name the server registers a worker under.
const DefaultName = "custom"

// MaxSandboxIDLen bounds sandbox ids sent to a worker; the worker's own
// provider may accept fewer (docker: 40).
const MaxSandboxIDLen = 64

// Config configures a remote provider. Zero values take the documented
// defaults.
type Config struct {
	Name  string // provider name; default "custom"
	URL   string // the worker's base URL, http:// or https://; required
	Token string // bearer token the worker expects; required

	// TLS: CAFile verifies the worker's certificate (default: system
	// roots); CertFile and KeyFile are the client certificate for mTLS.
	CAFile, CertFile, KeyFile string

	CallTimeout   time.Duration // deadline of every call but Create; default 30s
	CreateTimeout time.Duration // deadline of Create; default 3m
	DialTimeout   time.Duration // TCP (and TLS) connect; default 5s
}

// Handle.Data keys the provider sets.
const (
	DataWorkerProvider = "worker_provider" // the worker's local provider ("docker")
	DataWorker         = "worker"          // the worker's host:port, for operators
)

// Provider talks to one worker. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	log    *slog.Logger
	base   *url.URL
	dialer func(ctx context.Context) (net.Conn, error) // one TCP/TLS connection to the worker
	http   *http.Client
	auth   string // "Bearer <token>"

	caps atomic.Pointer[Info] // last info from the worker; nil before first contact

	mu     sync.Mutex
	agents map[string]*agent.Client // by sandbox id
}

// IsolationUnknown is the isolation reported before the worker first
// answered: nothing is promised, least of all a security boundary.
const IsolationUnknown = "unknown"

// New validates cfg and returns a Provider. It asks the worker for its
// capabilities (bounded by ctx and DialTimeout); a worker that does not
// answer yet is not an error — Health reports it, and capabilities are
// filled in on the first successful contact.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.CreateTimeout <= 0 {
		cfg.CreateTimeout = 3 * time.Minute
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, errs.New(errs.Invalid, "%s provider: url %q is not an http(s) base URL", cfg.Name, cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errs.New(errs.Invalid, "%s provider: a worker token is required", cfg.Name)
	}
	tlsCfg, err := clientTLS(cfg, u)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		cfg:    cfg,
		log:    log.With("provider", cfg.Name),
		base:   u,
		auth:   "Bearer " + strings.TrimSpace(cfg.Token),
		agents: map[string]*agent.Client{},
	}
	p.dialer = newDialer(u, tlsCfg, cfg.DialTimeout)
	p.http = &http.Client{Transport: &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return p.dialer(ctx) },
		DialTLSContext:      func(ctx context.Context, _, _ string) (net.Conn, error) { return p.dialer(ctx) },
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	ictx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := p.info(ictx, PathInfo); err != nil {
		p.log.Warn("worker not reachable yet; capabilities unknown until it answers", "url", u.Redacted(), "err", err)
	}
	return p, nil
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities are the worker's provider's, as last reported (see New).
func (p *Provider) Capabilities() provider.Capabilities {
	if in := p.caps.Load(); in != nil {
		return in.Capabilities
	}
	return provider.Capabilities{Isolation: IsolationUnknown, NetworkModes: []string{}, Features: []string{}}
}

// WorkerProvider returns the name of the worker's local provider, "" before
// the worker first answered.
func (p *Provider) WorkerProvider() string {
	if in := p.caps.Load(); in != nil {
		return in.Provider
	}
	return ""
}

// info fetches and records the worker's Info from path (info or health).
func (p *Provider) info(ctx context.Context, path string) (Info, error) {
	var in Info
	if err := p.call(ctx, http.MethodGet, path, nil, &in, p.cfg.CallTimeout); err != nil {
		return in, err
	}
	if in.ProtocolVersion != ProtocolVersion {
		return in, errs.New(errs.Unavailable, "worker speaks protocol version %d, want %d", in.ProtocolVersion, ProtocolVersion)
	}
	if in.Capabilities.NetworkModes == nil {
		in.Capabilities.NetworkModes = []string{}
	}
	if in.Capabilities.Features == nil {
		in.Capabilities.Features = []string{}
	}
	p.caps.Store(&in)
	return in, nil
}

// Health asks the worker to check its provider; it also refreshes the
// capabilities. A worker that is down is Unavailable within DialTimeout.
func (p *Provider) Health(ctx context.Context) error {
	_, err := p.info(ctx, PathHealth)
	return err
}

// Create asks the worker to create the runtime; it returns when the
// sandbox's agent answers on the worker.
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (provider.Handle, error) {
	if err := validID(spec.SandboxID); err != nil {
		return provider.Handle{}, err
	}
	var h provider.Handle
	if err := p.call(ctx, http.MethodPost, PathSandboxes, SpecToJSON(spec), &h, p.cfg.CreateTimeout); err != nil {
		return provider.Handle{}, err
	}
	if h.SandboxID != spec.SandboxID {
		return provider.Handle{}, errs.New(errs.Internal, "worker created sandbox %q, asked for %q", h.SandboxID, spec.SandboxID)
	}
	return p.toRemote(h), nil
}

// Inspect reports the runtime's state as the worker sees it.
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	var st StatusJSON
	if err := p.call(ctx, http.MethodGet, sandboxPath(h.SandboxID), nil, &st, p.cfg.CallTimeout); err != nil {
		return provider.Status{}, err
	}
	return st.Status(), nil
}

// Destroy asks the worker to destroy the runtime; a missing one is nil.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	p.dropAgent(h.SandboxID)
	return p.call(ctx, http.MethodDelete, sandboxPath(h.SandboxID), nil, nil, p.cfg.CallTimeout)
}

// List returns the worker's runtimes as this provider's handles.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	var hs []provider.Handle
	if err := p.call(ctx, http.MethodGet, PathSandboxes, nil, &hs, p.cfg.CallTimeout); err != nil {
		return nil, err
	}
	out := make([]provider.Handle, 0, len(hs))
	for _, h := range hs {
		if validID(h.SandboxID) != nil {
			continue
		}
		out = append(out, p.toRemote(h))
	}
	return out, nil
}

// Agent returns the cached client for h's agent, whose connections go
// through the worker's relay. It makes no call: a sandbox that is gone shows
// up as an error on the client's first request.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.agents[h.SandboxID]; c != nil {
		return c, nil
	}
	id := h.SandboxID
	c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return p.dialRelay(ctx, id) })
	p.agents[id] = c
	return c, nil
}

// Stats asks the worker for a resource reading (when its provider has one).
func (p *Provider) Stats(ctx context.Context, h provider.Handle) (provider.Stats, error) {
	var st provider.Stats
	if err := validID(h.SandboxID); err != nil {
		return st, err
	}
	err := p.call(ctx, http.MethodGet, sandboxPath(h.SandboxID)+"/stats", nil, &st, p.cfg.CallTimeout)
	return st, err
}

// Logs asks the worker for the runtime's last console lines.
func (p *Provider) Logs(ctx context.Context, h provider.Handle, lines int) ([]string, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	var out LogsJSON
	path := sandboxPath(h.SandboxID) + "/logs?lines=" + strconv.Itoa(lines)
	if err := p.call(ctx, http.MethodGet, path, nil, &out, p.cfg.CallTimeout); err != nil {
		return nil, err
	}
	return out.Lines, nil
}

// Close releases idle connections and cached agent clients.
func (p *Provider) Close() error {
	p.mu.Lock()
	for id, c := range p.agents {
		c.Close()
		delete(p.agents, id)
	}
	p.mu.Unlock()
	p.http.CloseIdleConnections()
	return nil
}

func (p *Provider) dropAgent(id string) {
	p.mu.Lock()
	c := p.agents[id]
	delete(p.agents, id)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// toRemote turns a worker's handle into ours. Only the sandbox id and the
// runtime id matter to the worker, which resolves its own handle; the rest
// is for operators.
func (p *Provider) toRemote(h provider.Handle) provider.Handle {
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: h.SandboxID,
		RuntimeID: h.RuntimeID,
		Data:      map[string]string{DataWorkerProvider: h.Provider, DataWorker: p.base.Host},
	}
}

func sandboxPath(id string) string { return PathSandboxes + "/" + id }

func validID(id string) error { return provider.ValidSandboxID(id, MaxSandboxIDLen) }

// call makes one JSON call to the worker: in (if not nil) is the body, out
// (if not nil) receives a 2xx answer, a non-2xx answer becomes an error of
// the class the worker sent. timeout bounds the call.
func (p *Provider) call(ctx context.Context, method, path string, in, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return errs.Wrap(errs.Internal, err, "encode worker request")
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base.String()+path, body)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "build worker request")
	}
	req.Header.Set("Authorization", p.auth)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return DecodeError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return transportError(ctx, err)
		}
		return errs.Wrap(errs.Unavailable, err, "worker sent a malformed answer")
	}
	return nil
}

// transportError classifies a failed round trip: our deadline is a
// Timeout, anything else (refused, reset, TLS) an Unavailable worker.
func transportError(ctx context.Context, err error) error {
	var ce *errs.Error
	if errors.As(err, &ce) { // a classified error from our dialer
		return err
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errs.Wrap(errs.Timeout, err, "worker call timed out")
		}
		return errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
	}
	return errs.Wrap(errs.Unavailable, err, "worker unreachable")
}

// Interface guards.
var (
	_ provider.Provider      = (*Provider)(nil)
	_ provider.StatsReporter = (*Provider)(nil)
	_ provider.LogReader     = (*Provider)(nil)
)
