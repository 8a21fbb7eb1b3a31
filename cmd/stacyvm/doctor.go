package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/app"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/ops/doctor"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// doctorOptions are the checks `doctor` and `support bundle` run.
func doctorOptions(g *globals, file string, production bool) doctor.Options {
	return doctor.Options{
		File: file, Env: g.env.environ, Home: g.env.getenv("HOME"), Production: production,
		ProviderChecks: func(ctx context.Context, cfg *config.Config, name string) []provider.HostCheck {
			return app.RuntimeHostChecks(ctx, cfg, name)
		},
		Images: doctor.DockerImages,
	}
}

func newDoctorCmd(g *globals) *cobra.Command {
	var (
		format     string
		production bool
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host can run StacyVM as configured",
		Long: "Check the config (with --production, the production lint too), the database\n" +
			"(open, migrations, integrity_check), every enabled provider's host checks, the\n" +
			"images sandboxes start from, disk space, the clock and the listen port. Every\n" +
			"failure names its fix (a command or a docs/operations.md anchor). Exits 1 on any\n" +
			"failure.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" && format != "markdown" {
				return usagef("--format must be text, json or markdown, got %q", format)
			}
			rep := doctor.Run(cmd.Context(), doctorOptions(g, g.configFile, production))
			switch format {
			case "json":
				if err := rep.JSON(cmd.OutOrStdout()); err != nil {
					return err
				}
			case "markdown":
				rep.Markdown(cmd.OutOrStdout())
			default:
				rep.Text(cmd.OutOrStdout())
			}
			if !rep.Passed {
				return exitCodeError{code: exitError}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	cmd.Flags().BoolVar(&production, "production", false, "also apply the production config rules")
	return cmd
}
