package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/app"
	"github.com/stacyvm/stacyvm/internal/config"
)

func newWorkerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Serve one local provider to a remote StacyVM server",
		Long: "Serve one local provider (worker.provider, default docker) over the worker\n" +
			"protocol (docs/worker-protocol.md), for a StacyVM server whose providers.custom\n" +
			"points here. Runs until interrupted.\n\n" +
			"Configuration: the same file and STACYVM_* variables as serve; the worker\n" +
			"section (STACYVM_WORKER_HOST, _PORT, _PROVIDER, _TOKEN or _TOKEN_FILE,\n" +
			"_TLS_CERT_FILE, _TLS_KEY_FILE, _CLIENT_CA_FILE) and providers.<name>.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
			if err != nil {
				return err
			}
			log, lerr := newLogger(cmd.ErrOrStderr(), cfg.Logging)
			if lerr != nil {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			}
			for _, w := range cfg.Warnings {
				log.Warn("config: " + w)
			}
			if err := cfg.ValidateWorker(); err != nil {
				return err
			}
			b := g.env.build.complete()
			return app.RunWorker(cmd.Context(), cfg, log, app.WithVersion(b.Version))
		},
	}
}
