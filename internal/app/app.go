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
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
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

	st, err := sqlite.Open(ctx, cfg.Database.Path, sqlite.WithLogger(log))
	if err != nil {
		return fmt.Errorf("open database %s: %w", cfg.Database.Path, err)
	}
	defer st.Close()

	agentPath, err := agentBinary(cfg.DataDir)
	if err != nil {
		return err
	}
	providers, closeProviders, err := buildProviders(ctx, cfg, serverID, agentPath, log)
	if err != nil {
		return err
	}
	defer closeProviders()

	d := cfg.Defaults
	svc, err := sandbox.New(sandbox.Options{
		Store:           st,
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

	host := cfg.Server.Host
	if cfg.Auth.APIKey == "" && cfg.Auth.AdminAPIKey == "" && !isLoopback(host) {
		log.Warn("no API key configured: binding to loopback only; set auth.api_key (STACYVM_AUTH_API_KEY) to listen on "+host, "requested_host", host)
		host = "127.0.0.1"
	}
	if cfg.Auth.APIKey == "" && cfg.Auth.AdminAPIKey == "" {
		log.Warn("no API key configured: every local caller has full access")
	}
	handler := api.New(api.Options{
		Service:        svc,
		Logger:         log,
		Version:        o.version,
		APIKey:         cfg.Auth.APIKey,
		AdminAPIKey:    cfg.Auth.AdminAPIKey,
		MaxBodyBytes:   cfg.Server.MaxBodyBytes,
		MaxUploadBytes: cfg.Server.MaxUploadBytes,
		StartedAt:      started,
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
		"database", cfg.Database.Path, "startup", time.Since(started).Round(time.Millisecond))
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
		dc := pc.Docker
		p, err := docker.New(ctx, docker.Config{
			Name:            "docker",
			Host:            dc.Host,
			Runtime:         dc.Runtime,
			DataDir:         filepath.Join(cfg.DataDir, "docker"),
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
		}, log.With("provider", "docker"))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("docker provider: %w", err)
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
	if len(out) == 0 {
		return nil, nil, errors.New("no provider is enabled: enable providers.docker (or providers.mock for tests)")
	}
	return out, closeAll, nil
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
