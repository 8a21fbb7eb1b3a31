package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/ops/bundle"
)

func newSupportCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "support",
		Short: "Collect information for a bug report",
		Args:  withArgs(cobra.NoArgs),
	}
	var (
		logFile  string
		logLines int
	)
	b := &cobra.Command{
		Use:   "bundle OUT.tar.gz",
		Short: "Write a support bundle with every secret redacted",
		Long: "Write a tar.gz with the version, the redacted configuration, the production\n" +
			"lint, doctor, diagnostics (from the running server when reachable) and the last\n" +
			"lines of the server log (--log-file, else journalctl -u stacyvm). Every secret\n" +
			"config value is removed from every file (docs/operations.md#support-bundle).",
		Args: withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			bi := g.env.build.complete()
			m, err := bundle.Write(cmd.Context(), bundle.Options{
				Out: args[0], Version: strings.TrimSpace(versionText(bi)), ConfigFile: g.configFile,
				Env: g.env.environ, Home: g.env.getenv("HOME"), LogFile: logFile, LogLines: logLines,
				Doctor: doctorOptions(g, g.configFile, true),
			})
			if err != nil {
				return err
			}
			return g.printJSONOr(cmd, m, fmt.Sprintf("support bundle written: %s (%d files)\n  %s", m.Path, len(m.Files), strings.Join(m.Notes, "\n  ")))
		},
	}
	b.Flags().StringVar(&logFile, "log-file", "", "the server's log file to include the end of")
	b.Flags().IntVar(&logLines, "log-lines", bundle.DefaultLogLines, "how many log lines to include")
	cmd.AddCommand(b)
	return cmd
}
