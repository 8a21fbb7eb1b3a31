// Package app builds a running StacyVM server from its config: store,
// providers, sandbox service and HTTP API. It is the only package that knows
// the concrete implementations.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/metrics"
	"github.com/stacyvm/stacyvm/internal/ops/diag"
	"github.com/stacyvm/stacyvm/internal/preview"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/provider/proot"
	"github.com/stacyvm/stacyvm/internal/provider/vm"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// Option adjusts Run.
type Option func(*runOptions)

type runOptions struct {
	version string
	ready   func(addr string)
}

// WithVersion sets the version reported by /health.
func WithVersion(v string) Option { return func(o *runOptions) { o.version = v } }

// WithReady is called with the listening address once the server accepts
// connections.
func WithReady(fn func(addr string)) Option { return func(o *runOptions) { o.ready = fn } }

// Run serves the API until ctx is cancelled, then shuts down gracefully.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) error {
	o := runOptions{version: "dev"}
	for _, opt := range opts {
		opt(&o)
	}
	started := time.Now()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	serverID, err := loadServerID(cfg.DataDir)
	if err != nil {
		return err
	}
	log = log.With("server_id", serverID)
	tr, stopTracing, err := startTracing(ctx, cfg, o.version, serverID, log) // tracing.go
	if err != nil {
		return err
	}
	defer stopTracing() // last: flushes the spans of everything below

	st, database, err := openStore(ctx, cfg.Database, log) // store.go
	if err != nil {
		return err
	}
	defer st.Close()
	met, bus := metrics.New(), events.NewBus(events.DefaultRingSize) // docs/metrics.md

	agentPath, err := agentBinary(cfg.DataDir)
	if err != nil {
		return err
	}
	providers, closeProviders, err := buildProviders(ctx, cfg, serverID, agentPath, log)
	if err != nil {
		return err
	}
	defer closeProviders()
	providers = traceProviders(tr, providers)

	d := cfg.Defaults
	svc, err := sandbox.New(sandbox.Options{
		Store:           met.InstrumentStore(st),
		Observer:        met,
		Events:          bus,
		Governance:      st.Governance(),
		DefaultNetworks: defaultNetworks(cfg),
		Providers:       providers,
		DefaultProvider: cfg.Providers.Default,
		WarmPools:       cfg.WarmPool.Pools(),
		Logger:          log,
		Defaults: sandbox.Defaults{
			Image:              d.Image,
			TTL:                d.TTL.Std(),
			MaxTTL:             d.MaxTTL.Std(),
			MemoryMB:           d.MemoryMB,
			VCPUs:              float64(d.VCPUs),
			DefaultExecTimeout: d.DefaultExecTimeout.Std(),
			MaxExecTimeout:     d.MaxExecTimeout.Std(),
			MaxSandboxes:       d.MaxSandboxes,
			MaxPerOwner:        d.MaxSandboxesPerOwner,
			ReapInterval:       d.ReapInterval.Std(),
			ReconcileInterval:  d.ReconcileInterval.Std(),
			DestroyedRetention: d.DestroyedRetention.Std(),
		},
	})
	if err != nil {
		return err
	}
	if _, err := svc.Reconcile(ctx); err != nil {
		log.Warn("reconcile on start failed; continuing", "err", err)
	}
	svc.Start(ctx)
	defer svc.Close()
	met.Watch(ctx, st, svc, strings.Split(providerNames(providers), ","), bus)

	secOpts, err := securityOptions(cfg, st.Governance(), log) // security.go
	if err != nil {
		return err
	}
	retCtx, stopRetention := context.WithCancel(ctx)
	retDone := make(chan struct{})
	go func() {
		defer close(retDone)
		sandbox.RunAuditRetention(retCtx, st.Governance(), cfg.Auth.AdminAuditRetention.Std(), time.Hour, log)
	}()
	defer func() { stopRetention(); <-retDone }()

	host := cfg.Server.Host
	if !cfg.HasCredentials() && !isLoopback(host) {
		log.Warn("no API key configured: binding to loopback only; set auth.api_key (STACYVM_AUTH_API_KEY) to listen on "+host, "requested_host", host)
		host = "127.0.0.1"
	}
	if !cfg.HasCredentials() {
		log.Warn("no API key configured: every local caller has full access")
	}
	previewOpts, err := previewOptions(cfg)
	if err != nil {
		return err
	}
	apiSvc, reqTracer := apiTracing(tr, sandbox.NewAudited(svc))
	handler := api.New(api.Options{
		Preview:        previewOpts,
		Service:        apiSvc,
		Tracer:         reqTracer,
		Security:       secOpts,
		Logger:         log,
		Version:        o.version,
		APIKey:         cfg.Auth.APIKey,
		AdminAPIKey:    cfg.Auth.AdminAPIKey,
		MaxBodyBytes:   cfg.Server.MaxBodyBytes,
		MaxUploadBytes: cfg.Server.MaxUploadBytes,
		StartedAt:      started,
		Ops: api.Ops{Metrics: met, Events: bus, Diagnostics: func(ctx context.Context) (any, error) {
			return diag.Collect(ctx, diag.Input{Config: cfg, Version: o.version, StartedAt: started, ServerID: serverID,
				Store: st, Schema: st, Service: svc, Events: bus}), nil
		}},
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.Server.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.Std(),
		// No WriteTimeout: exec streams and downloads may run for hours;
		// each operation carries its own deadline instead.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("stacyvm serving", "addr", "http://"+addr+api.BasePath, "version", o.version,
		"providers", providerNames(providers), "default_provider", cfg.Providers.Default,
		"database", database, "startup", time.Since(started).Round(time.Millisecond))
	if o.ready != nil {
		o.ready(addr)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func buildProviders(ctx context.Context, cfg *config.Config, serverID, agentPath string, log *slog.Logger) ([]provider.Provider, func(), error) {
	var out []provider.Provider
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	pc := cfg.Providers
	if pc.Docker.Enabled {
		p, err := docker.New(ctx, dockerFlavourConfig("docker", pc.Docker, cfg.DataDir, agentPath, serverID), log.With("provider", "docker"))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("docker provider: %w", err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	// gvisor and kata: the docker provider with another OCI runtime and
	// that runtime's capabilities and limits.
	for _, f := range []struct {
		name    string
		enabled bool
		cfg     config.DockerConfig
		flavour func(docker.Config) docker.Config
	}{
		{"gvisor", pc.Gvisor.Enabled, pc.Gvisor, docker.GVisor},
		{"kata", pc.Kata.Enabled, pc.Kata, docker.Kata},
	} {
		if !f.enabled {
			continue
		}
		p, err := docker.New(ctx, f.flavour(dockerFlavourConfig(f.name, f.cfg, cfg.DataDir, agentPath, serverID)), log.With("provider", f.name))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s provider: %w", f.name, err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	if pc.Proot.Enabled {
		pr := pc.Proot
		p, err := proot.New(ctx, proot.Config{
			Name:            "proot",
			Binary:          pr.Binary,
			DataDir:         filepath.Join(cfg.DataDir, "proot"),
			AgentPath:       agentPath,
			ServerID:        serverID,
			DockerHost:      pc.Docker.Host,
			DefaultMemoryMB: pr.MemoryMB,
			DefaultCPUs:     pr.CPUs,
			PidsLimit:       int64(pr.PidsLimit),
		}, log.With("provider", "proot"))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("proot provider: %w", err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	if pc.VM.Enabled {
		vc := pc.VM
		p, err := vm.New(ctx, vm.Config{
			Name:            "vm",
			DataDir:         filepath.Join(cfg.DataDir, "vm"),
			AgentPath:       agentPath,
			ServerID:        serverID,
			QEMUBinary:      vc.QEMUBinary,
			AssetsDir:       vc.AssetsDir,
			Kernel:          vc.Kernel,
			InitrdBase:      vc.Initrd,
			Accel:           vc.Accel,
			DefaultMemoryMB: vc.MemoryMB,
			DefaultVCPUs:    vc.VCPUs,
			BootTimeout:     vc.BootTimeout.Std(),
			DockerHost:      pc.Docker.Host,
		}, log.With("provider", "vm"))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("vm provider: %w", err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	if pc.Mock.Enabled {
		log.Warn("the mock provider runs sandboxes as plain host processes: for tests only, never in production")
		p, err := mock.New(ctx, mock.Config{
			Name:      "mock",
			DataDir:   filepath.Join(cfg.DataDir, "mock"),
			AgentPath: agentPath,
			ServerID:  serverID,
		}, log.With("provider", "mock"))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("mock provider: %w", err)
		}
		out = append(out, p)
	}
	if pc.Custom.Enabled { // a remote worker (worker.go, docs/worker-protocol.md)
		p, err := newCustomProvider(ctx, pc.Custom, log)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("custom provider: %w", err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	if pc.E2B.Enabled { // Preview (e2b.go)
		p, err := newE2BProvider(pc.E2B, cfg.Defaults.Image, serverID, agentPath, log)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("e2b provider: %w", err)
		}
		out = append(out, p)
		closers = append(closers, func() { p.Close() })
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no provider is enabled: enable providers.docker, gvisor, kata, proot, vm or custom (or providers.mock for tests)")
	}
	return out, closeAll, nil
}

// dockerFlavourConfig maps a providers.<name> section of docker keys to a
// docker.Config with its own data dir (sockets never collide between
// flavours sharing one engine).
func dockerFlavourConfig(name string, dc config.DockerConfig, dataDir, agentPath, serverID string) docker.Config {
	return docker.Config{
		Name:            name,
		Host:            dc.Host,
		Runtime:         dc.Runtime,
		DataDir:         filepath.Join(dataDir, name),
		AgentPath:       agentPath,
		ServerID:        serverID,
		DefaultNetwork:  dc.NetworkMode,
		DefaultMemoryMB: dc.MemoryMB,
		DefaultCPUs:     dc.CPUs,
		PidsLimit:       int64(dc.PidsLimit),
		ReadOnlyRootfs:  dc.ReadOnlyRootfs,
		SeccompProfile:  dc.SeccompProfile,
		Pull:            dc.Pull,
		PullTimeout:     dc.PullTimeout.Std(),
		User:            dc.User,
	}
}

func providerNames(ps []provider.Provider) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	return strings.Join(names, ",")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadServerID returns this data dir's server identity, creating it once.
// Runtime labels carry it, so two servers on one engine never touch each
// other's sandboxes.
func loadServerID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "server-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := "srv-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// previewOptions builds the preview proxy's settings: the host suffix, the
// preview_domain sandboxes report (with the listen port unless the domain
// names one or the port is 80) and the token signer, whose key comes from
// server.preview_token_key or a file generated once in the data dir.
func previewOptions(cfg *config.Config) (api.PreviewOptions, error) {
	key := []byte(cfg.Server.PreviewTokenKey)
	if len(key) == 0 {
		var err error
		if key, err = preview.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "preview-token-key")); err != nil {
			return api.PreviewOptions{}, fmt.Errorf("preview token key: %w", err)
		}
	}
	signer, err := preview.NewSigner(key, nil)
	if err != nil {
		return api.PreviewOptions{}, fmt.Errorf("server.preview_token_key: %w", err)
	}
	public := cfg.Server.PreviewDomain
	if _, _, err := net.SplitHostPort(public); err != nil && public != "" && cfg.Server.Port != 80 {
		public = net.JoinHostPort(public, strconv.Itoa(cfg.Server.Port))
	}
	return api.PreviewOptions{Domain: cfg.Server.PreviewDomain, PublicDomain: public, Signer: signer}, nil
}

// The sandbox service serves previews, archives and file watches.
var (
	_ api.PreviewService = (*sandbox.Service)(nil)
	_ api.ArchiveService = (*sandbox.Service)(nil)
)
