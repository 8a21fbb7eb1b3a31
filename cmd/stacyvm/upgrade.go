package main

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/ops/upgrade"
)

func newUpgradeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Prepare upgrades of this installation",
		Args:  withArgs(cobra.NoArgs),
	}
	var (
		cfgFile, database, backupDir string
		keep                         bool
	)
	rehearse := &cobra.Command{
		Use:   "rehearse --config C --database D",
		Short: "Rehearse an upgrade to this binary without touching the live database",
		Long: "Run with the NEW binary before replacing the old one: lints the config for\n" +
			"production, backs the database up, applies this binary's migrations to a copy,\n" +
			"checks the copy's integrity, lists the pending migrations and prints the\n" +
			"rollback command (docs/operations.md#upgrades). Exits 1 when a step fails.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfgFile = g.configFile // --config C (the global flag)
			if database == "" {
				p, _, err := g.databasePath("")
				if err != nil {
					return usagef("--database is required (the config gives none: %v)", err)
				}
				database = p
			}
			bin, _ := os.Executable()
			if bin == "" {
				bin = "stacyvm"
			}
			rep := upgrade.Rehearse(cmd.Context(), upgrade.Options{ConfigFile: cfgFile, Database: database, BackupDir: backupDir,
				Env: g.env.environ, Home: g.env.getenv("HOME"), Binary: filepath.Clean(bin), Keep: keep})
			if g.jsonOutput() {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
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
	f := rehearse.Flags()
	f.StringVar(&database, "database", "", "the live SQLite database (default: database.path from the config)")
	f.StringVar(&backupDir, "backup-dir", "", "where the pre-upgrade backup goes (default: next to the database)")
	f.BoolVar(&keep, "keep", false, "keep the migrated copy for inspection")
	cmd.AddCommand(rehearse)
	return cmd
}
