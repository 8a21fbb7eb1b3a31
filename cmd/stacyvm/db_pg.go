package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
)

// pgFlags are the flags of the Postgres maintenance commands.
type pgFlags struct {
	dsn    string
	binDir string
}

func (f *pgFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "Postgres DSN (default: database.dsn or database.dsn_file from the config; prefer those, a flag shows in ps)")
	cmd.Flags().StringVar(&f.binDir, "pg-bin", "", "directory of pg_dump and pg_restore (default: PATH, then the newest /usr/lib/postgresql/*/bin)")
}

// postgresDSN is --dsn when given, else the configured Postgres DSN.
func (g *globals) postgresDSN(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return "", err
	}
	if cfg.Database.Driver != config.DriverPostgres || cfg.Database.DSN == "" {
		return "", usagef("no Postgres database configured (database.driver is %q): set database.driver: postgres and database.dsn, or pass --dsn", cfg.Database.Driver)
	}
	return cfg.Database.DSN, nil
}

func newPGBackupCmd(g *globals) *cobra.Command {
	var f pgFlags
	cmd := &cobra.Command{
		Use:   "pg-backup OUT",
		Short: "Write a pg_dump backup of the Postgres database to OUT (safe while servers run)",
		Long: "Dump the database with pg_dump -Fc (one consistent snapshot, safe while servers\n" +
			"write), check the archive with pg_restore --list and move it to OUT (mode 0600).\n" +
			"OUT must not exist. The password reaches pg_dump through a private PGPASSFILE,\n" +
			"never the command line (docs/operations.md#postgres).",
		Args: withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dsn, err := g.postgresDSN(f.dsn)
			if err != nil {
				return err
			}
			info, err := postgres.Backup(cmd.Context(), dsn, args[0], postgres.Tools{Dir: f.binDir})
			if err != nil {
				return err
			}
			return g.printJSONOr(cmd, info, fmt.Sprintf("backup written: %s (%d bytes, schema version %d, %d archive entries verified, %s)",
				info.Path, info.Bytes, info.Schema, info.Entries, info.Duration.Round(time.Millisecond)))
		},
	}
	f.add(cmd)
	return cmd
}

func newPGRehearseCmd(g *globals) *cobra.Command {
	var (
		f    pgFlags
		from string
	)
	cmd := &cobra.Command{
		Use:   "pg-rehearse [--from BACKUP]",
		Short: "Rehearse this binary's migrations on a scratch copy of the Postgres database",
		Long: "Run with the NEW binary before replacing the old one: restores BACKUP (a\n" +
			"pg-backup file) or a fresh dump of the live database into a scratch database on\n" +
			"the same server, applies this binary's migrations there, reads the data back,\n" +
			"reports the schema version before and after and the pending migrations, drops\n" +
			"the scratch database and prints the rollback command. The live database is only\n" +
			"read; the DSN's role needs CREATEDB. Exits 1 when a step fails.",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := g.postgresDSN(f.dsn)
			if err != nil {
				return err
			}
			if from != "" {
				if from, err = filepath.Abs(from); err != nil {
					return errs.Wrap(errs.Invalid, err, "bad --from path")
				}
				if _, err := os.Stat(from); err != nil {
					return errs.Wrap(errs.NotFound, err, "backup %s not found", from)
				}
			}
			bin, _ := os.Executable()
			if bin == "" {
				bin = "stacyvm"
			}
			rep := postgres.Rehearse(cmd.Context(), postgres.RehearseOptions{DSN: dsn, From: from,
				Tools: postgres.Tools{Dir: f.binDir}, Binary: filepath.Clean(bin)})
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
	f.add(cmd)
	cmd.Flags().StringVar(&from, "from", "", "rehearse on this pg-backup file instead of a fresh dump of the live database")
	return cmd
}
