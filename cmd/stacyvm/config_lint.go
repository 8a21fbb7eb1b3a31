package main

import (
	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/ops/lint"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the server configuration",
		Args:  withArgs(cobra.NoArgs),
	}
	cmd.AddCommand(newConfigLintCmd(g))
	return cmd
}

func newConfigLintCmd(g *globals) *cobra.Command {
	var (
		file       string
		format     string
		production bool
	)
	cmd := &cobra.Command{
		Use:   "lint",
		Short: "Check a config file (and the STACYVM_* environment) without Docker, KVM or the database",
		Long: "Load the configuration exactly as `stacyvm serve` would (defaults, file, STACYVM_*\n" +
			"environment) and report unknown keys with line numbers and invalid values.\n" +
			"--production adds the production rules (auth, CORS, limits, runtime hardening...),\n" +
			"each with an id, a severity and a remediation (docs/operations.md#config-lint).\n" +
			"Exits 1 when any error-severity finding remains.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usagef("--format must be text or json, got %q", format)
			}
			if file == "" {
				file = g.configFile
			}
			rep := lint.Run(lint.Options{File: file, Env: g.env.environ, Home: g.env.getenv("HOME"), Production: production})
			if format == "json" {
				if err := rep.JSON(cmd.OutOrStdout()); err != nil {
					return err
				}
			} else {
				rep.Text(cmd.OutOrStdout())
			}
			if !rep.Passed {
				return exitCodeError{code: exitError}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "config file to check (default: --config, then the files serve searches)")
	f.StringVar(&format, "format", "text", "output format: text or json")
	f.BoolVar(&production, "production", false, "apply the production rules")
	return cmd
}
