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
			cfg, err := config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
			if err != nil {
				return err
			}
			// An invalid logging section is reported by Validate with every
			// other problem; until then log plainly.
			log, lerr := newLogger(cmd.ErrOrStderr(), cfg.Logging)
			if lerr != nil {
				log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			}
			for _, w := range cfg.Warnings {
				log.Warn("config: " + w)
			}
			if err := cfg.Validate(); err != nil {
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
