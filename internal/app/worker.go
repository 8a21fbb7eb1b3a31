package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
	"github.com/stacyvm/stacyvm/internal/worker"
)

// newCustomProvider builds the remote provider of providers.custom.
func newCustomProvider(ctx context.Context, cc config.CustomConfig, log *slog.Logger) (*remote.Provider, error) {
	return remote.New(ctx, remote.Config{
		Name:          config.ProviderCustom,
		URL:           cc.URL,
		Token:         cc.Token,
		CAFile:        cc.CAFile,
		CertFile:      cc.CertFile,
		KeyFile:       cc.KeyFile,
		CallTimeout:   cc.Timeout.Std(),
		CreateTimeout: cc.CreateTimeout.Std(),
	}, log.With("provider", config.ProviderCustom))
}

// RunWorker serves cfg.Worker.Provider over the worker protocol until ctx
// is cancelled (`stacyvm worker`, docs/worker-protocol.md). The worker keeps
// its state under <data_dir>/worker with an identity of its own, so a server
// sharing the host and data dir never takes the worker's runtimes for its
// orphans. It opens no database.
func RunWorker(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) error {
	o := runOptions{version: "dev"}
	for _, opt := range opts {
		opt(&o)
	}
	wc := cfg.Worker
	local := *cfg
	local.DataDir = filepath.Join(cfg.DataDir, "worker")
	pc, err := onlyProvider(cfg.Providers, wc.Provider)
	if err != nil {
		return err
	}
	local.Providers = pc
	if err := os.MkdirAll(local.DataDir, 0o700); err != nil {
		return fmt.Errorf("worker data dir %s: %w", local.DataDir, err)
	}
	workerID, err := loadServerID(local.DataDir)
	if err != nil {
		return err
	}
	log = log.With("worker_id", workerID)
	agentPath, err := agentBinary(local.DataDir)
	if err != nil {
		return err
	}
	ps, closeProviders, err := buildProviders(ctx, &local, workerID, agentPath, log)
	if err != nil {
		return err
	}
	defer closeProviders()
	srv, err := worker.New(worker.Config{Provider: ps[0], Tokens: auth.SplitKeys(wc.Token), Version: o.version}, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	var tlsCfg *tls.Config
	if wc.TLSCertFile != "" {
		if tlsCfg, err = worker.ServerTLS(wc.TLSCertFile, wc.TLSKeyFile, wc.ClientCAFile); err != nil {
			return err
		}
	} else if !isLoopback(wc.Host) {
		log.Warn("worker listens beyond loopback without TLS: its token and sandbox traffic travel in clear text; set worker.tls_cert_file and worker.tls_key_file", "host", wc.Host)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(wc.Host, strconv.Itoa(wc.Port)))
	if err != nil {
		return fmt.Errorf("worker listen: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: creates wait for image pulls and relays carry
		// long execs; every call carries its own deadline instead.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("stacyvm worker serving", "addr", scheme+"://"+addr, "provider", ps[0].Name(),
		"isolation", ps[0].Capabilities().Isolation, "mtls", wc.ClientCAFile != "", "version", o.version)
	if o.ready != nil {
		o.ready(addr)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("worker shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// onlyProvider returns pc with only the named local provider enabled.
func onlyProvider(pc config.ProvidersConfig, name string) (config.ProvidersConfig, error) {
	pc.Docker.Enabled, pc.Gvisor.Enabled, pc.Kata.Enabled = false, false, false
	pc.Proot.Enabled, pc.VM.Enabled, pc.Mock.Enabled, pc.Custom.Enabled = false, false, false, false
	switch name {
	case config.ProviderDocker:
		pc.Docker.Enabled = true
	case config.ProviderGvisor:
		pc.Gvisor.Enabled = true
	case config.ProviderKata:
		pc.Kata.Enabled = true
	case config.ProviderProot:
		pc.Proot.Enabled = true
	case config.ProviderVM:
		pc.VM.Enabled = true
	case config.ProviderMock:
		pc.Mock.Enabled = true
	default:
		return pc, fmt.Errorf("worker.provider %q is not a local provider", name)
	}
	pc.Default = name
	return pc, nil
}

// The remote provider is a provider like the others.
var _ provider.Provider = (*remote.Provider)(nil)
