package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/ops/doctor"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// loadConfig loads the configuration the way serve does, for the local
// operations commands.
func (g *globals) loadConfig() (*config.Config, error) {
	return config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
}

// databasePath is --database when given, else the configured SQLite file.
func (g *globals) databasePath(flag string) (string, *config.Config, error) {
	cfg, err := g.loadConfig()
	if flag != "" {
		return flag, cfg, nil // an explicit file needs no loadable config
	}
	if err != nil {
		return "", nil, err
	}
	if cfg.Database.Driver == config.DriverPostgres {
		return "", cfg, errs.New(errs.Invalid, "database.driver is postgres: this command works on the SQLite file; "+
			"use stacyvm db pg-backup and db pg-rehearse (docs/operations.md#postgres)")
	}
	return cfg.Database.Path, cfg, nil
}

func (g *globals) printJSONOr(cmd *cobra.Command, v any, text string) error {
	if g.jsonOutput() {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), text)
	return err
}

func newDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Back up, restore and inspect the server's database",
		Long: "backup, restore and status work on the SQLite file (database.driver: sqlite);\n" +
			"pg-backup and pg-rehearse on a Postgres database (database.driver: postgres).",
		Args: withArgs(cobra.NoArgs),
	}
	var dbFlag string
	cmd.PersistentFlags().StringVar(&dbFlag, "database", "", "SQLite file for backup, restore and status (default: database.path from the config)")

	backup := &cobra.Command{
		Use:   "backup OUT",
		Short: "Write a consistent copy of the database to OUT (safe while the server runs)",
		Long: "Copy the database with one VACUUM INTO snapshot, check the copy with\n" +
			"PRAGMA integrity_check and move it to OUT (mode 0600). OUT must not exist.\n" +
			"Safe while the server runs and writes (docs/operations.md#backup).",
		Args: withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, _, err := g.databasePath(dbFlag)
			if err != nil {
				return err
			}
			info, err := sqlite.Backup(cmd.Context(), src, args[0])
			if err != nil {
				return err
			}
			return g.printJSONOr(cmd, info, fmt.Sprintf("backup written: %s (%d bytes, schema version %d, integrity ok, %s)",
				info.Path, info.Bytes, info.Schema, info.Duration.Round(time.Millisecond)))
		},
	}
	var yes bool
	restore := &cobra.Command{
		Use:   "restore IN --yes",
		Short: "Replace the database with the backup IN (stop the server first)",
		Long: "Check IN with PRAGMA integrity_check (a corrupt backup is refused), keep a\n" +
			"timestamped safety copy of the current database (<db>.pre-restore-<UTC time>),\n" +
			"then put IN in its place. Refuses while a server answers on the configured port\n" +
			"(docs/operations.md#restore).",
		Args: withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usagef("restore replaces the database; pass --yes to confirm")
			}
			dst, cfg, err := g.databasePath(dbFlag)
			if err != nil {
				return err
			}
			if cfg != nil {
				if v, up := doctor.ServerAt(cmd.Context(), cfg.Server.Addr()); up {
					return errs.New(errs.Conflict, "a stacyvm server (version %s) is running on %s: stop it first (systemctl stop stacyvm)", v, cfg.Server.Addr())
				}
			}
			res, err := sqlite.Restore(cmd.Context(), args[0], dst, time.Now())
			if err != nil {
				return err
			}
			safety := "no previous database"
			if res.SafetyCopy != "" {
				safety = "safety copy of the previous database: " + res.SafetyCopy
			}
			return g.printJSONOr(cmd, res, fmt.Sprintf("restored %s from %s (schema version %d); %s", res.Restored, args[0], res.Schema, safety))
		},
	}
	restore.Flags().BoolVar(&yes, "yes", false, "confirm replacing the database")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the database's migration state and integrity",
		Args:  withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _, err := g.databasePath(dbFlag)
			if err != nil {
				return err
			}
			ms, err := sqlite.Migrations(cmd.Context(), path)
			if err != nil {
				return err
			}
			probs, err := sqlite.IntegrityCheck(cmd.Context(), path)
			if err != nil {
				return err
			}
			out := struct {
				Path      string                `json:"path"`
				Schema    sqlite.MigrationState `json:"migrations"`
				Integrity []string              `json:"integrity_problems"`
			}{path, ms, append([]string{}, probs...)}
			integrity := "ok"
			if len(probs) > 0 {
				integrity = fmt.Sprintf("%d problem(s): %s", len(probs), probs[0])
			}
			if err := g.printJSONOr(cmd, out, fmt.Sprintf("%s: schema version %d of %d, pending %v, integrity %s", path, ms.Current, ms.Latest, ms.Pending, integrity)); err != nil {
				return err
			}
			if len(probs) > 0 {
				return exitCodeError{code: exitError}
			}
			return nil
		},
	}
	cmd.AddCommand(backup, restore, status, newPGBackupCmd(g), newPGRehearseCmd(g)) // db_pg.go
	return cmd
}
