package main

import (
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
			cfg, log, err := g.loadDaemonConfig(cmd, (*config.Config).ValidateWorker)
			if err != nil {
				return err
			}
			b := g.env.build.complete()
			return app.RunWorker(cmd.Context(), cfg, log, app.WithVersion(b.Version))
		},
	}
}
