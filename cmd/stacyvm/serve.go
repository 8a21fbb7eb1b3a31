package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/app"
	"github.com/stacyvm/stacyvm/internal/config"
)

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the StacyVM server",
		Long: "Run the StacyVM server until interrupted (SIGINT/SIGTERM shut it down gracefully).\n\n" +
			"Configuration: built-in defaults, then --config (or ./stacyvm.yaml, then\n" +
			"~/.stacyvm/config.yaml), then STACYVM_* environment variables such as\n" +
			"STACYVM_SERVER_PORT or STACYVM_AUTH_API_KEY.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.loadDaemonConfig(cmd, (*config.Config).Validate)
			if err != nil {
				return err
			}
			source := cfg.Source
			if source == "" {
				source = "(defaults and environment only)"
			}
			log.Info("config loaded", "file", source, "data_dir", cfg.DataDir, "provider", cfg.Providers.Default)
			b := g.env.build.complete()
			return app.Run(cmd.Context(), cfg, log, app.WithVersion(b.Version))
		},
	}
}

// loadDaemonConfig loads the config for a long-running command (serve,
// worker), builds its logger, logs the config's warnings and then checks it
// with validate. An invalid logging section is reported by validate with
// every other problem; until then the logger is plain text.
func (g *globals) loadDaemonConfig(cmd *cobra.Command, validate func(*config.Config) error) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
	if err != nil {
		return nil, nil, err
	}
	log, lerr := newLogger(cmd.ErrOrStderr(), cfg.Logging)
	if lerr != nil {
		log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if err := validate(cfg); err != nil {
		return nil, nil, err
	}
	return cfg, log, nil
}

// newLogger builds the server's slog logger from logging.level/format.
func newLogger(w io.Writer, lc config.LoggingConfig) (*slog.Logger, error) {
	level, err := lc.SlogLevel()
	if err != nil {
		return nil, fmt.Errorf("logging.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lc.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("logging.format must be text or json, got %q", lc.Format)
}
