package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
)

// Maintenance helpers for `stacyvm db pg-backup` and `db pg-rehearse`. They
// never migrate or write the live database: backups are pg_dump snapshots
// (one repeatable-read transaction, safe while servers write), and
// rehearsals migrate a scratch copy on the same server.

// MigrationState is a database's schema version against this binary's
// embedded Postgres migrations.
type MigrationState struct {
	Current int64   `json:"current"` // highest applied version, 0 for none
	Latest  int64   `json:"latest"`  // highest version this binary knows
	Applied []int64 `json:"applied"`
	Pending []int64 `json:"pending"` // known to the binary, not applied
	Unknown []int64 `json:"unknown"` // applied, unknown to the binary (a newer binary migrated it)
}

var migrationFile = regexp.MustCompile(`^(\d+)_.*\.sql$`)

// KnownMigrations lists the versions embedded in this binary, ascending.
func KnownMigrations() []int64 {
	var out []int64
	_ = fs.WalkDir(migrations.Postgres(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if m := migrationFile.FindStringSubmatch(d.Name()); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			out = append(out, v)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// connect opens one connection for maintenance, bounded like Open's.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errs.New(errs.Invalid, "postgres: cannot parse the DSN (%s)", Redact(dsn))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, err, "postgres: connect")
	}
	return c, nil
}

// Migrations reads the schema state of the database without changing it
// (goose's version table is read directly).
func Migrations(ctx context.Context, dsn string) (MigrationState, error) {
	c, err := connect(ctx, dsn)
	if err != nil {
		return MigrationState{}, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return migrationState(ctx, c)
}

func migrationState(ctx context.Context, c *pgx.Conn) (MigrationState, error) {
	st := MigrationState{Applied: []int64{}, Pending: []int64{}, Unknown: []int64{}}
	known := KnownMigrations()
	if len(known) > 0 {
		st.Latest = known[len(known)-1]
	}
	applied := map[int64]bool{}
	var exists bool
	if err := c.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return st, classify(ctx, err, "postgres: read schema version")
	}
	if exists {
		rows, err := c.Query(ctx, `SELECT version_id, is_applied FROM goose_db_version ORDER BY id`)
		if err != nil {
			return st, classify(ctx, err, "postgres: read schema version")
		}
		for rows.Next() {
			var v int64
			var ok bool
			if err := rows.Scan(&v, &ok); err != nil {
				rows.Close()
				return st, classify(ctx, err, "postgres: read schema version")
			}
			applied[v] = ok // the last row for a version wins (down then up)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, classify(ctx, err, "postgres: read schema version")
		}
	}
	for _, v := range known {
		if applied[v] {
			st.Applied = append(st.Applied, v)
		} else {
			st.Pending = append(st.Pending, v)
		}
	}
	for v, ok := range applied {
		if ok && v > 0 && !slices.Contains(known, v) {
			st.Unknown = append(st.Unknown, v)
		}
		if ok && v > st.Current {
			st.Current = v
		}
	}
	slices.Sort(st.Unknown)
	return st, nil
}

// Tools finds the PostgreSQL client programs (pg_dump, pg_restore).
type Tools struct {
	// Dir holds them; "" looks on PATH, then in the newest
	// /usr/lib/postgresql/*/bin (Debian's layout). pg_dump must be at least
	// as new as the server.
	Dir string
}

func (t Tools) path(name string) (string, error) {
	if t.Dir != "" {
		p := filepath.Join(t.Dir, name)
		if _, err := os.Stat(p); err != nil {
			return "", errs.Wrap(errs.Unavailable, err, "%s not found in %s", name, t.Dir)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p, nil
		}
	}
	return "", errs.New(errs.Unavailable, "%s not found: install the PostgreSQL client (apt-get install postgresql-client) or pass --pg-bin DIR", name)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// run runs a client program against dsn (pointed at database dbname when
// that is not ""): the connection string goes on the command line, first
// and without its password, which reaches the program through a
// private PGPASSFILE instead. Output is returned for the caller to parse;
// on failure the program's stderr becomes the error text (libpq never
// prints passwords).
func (t Tools) run(ctx context.Context, name, dsn, dbname string, args ...string) ([]byte, error) {
	bin, err := t.path(name)
	if err != nil {
		return nil, err
	}
	conn, pw, err := libpqDSN(dsn, dbname)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "postgres: cannot parse the DSN")
	}
	env := os.Environ()
	if pw != "" {
		dir, err := os.MkdirTemp("", "stacyvm-pgpass-*")
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "create a password file")
		}
		defer os.RemoveAll(dir)
		pass := filepath.Join(dir, "pgpass")
		line := "*:*:*:*:" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(pw) + "\n"
		if err := os.WriteFile(pass, []byte(line), 0o600); err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "write a password file")
		}
		env = append(env, "PGPASSFILE="+pass)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--dbname=" + conn}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Timeout, ctx.Err(), "%s cancelled", name)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, errs.Wrap(errs.Unavailable, err, "%s failed: %s", name, msg)
	}
	return stdout.Bytes(), nil
}

// list runs pg_restore --list on a custom-format dump and returns the
// entries of its table of contents (comments left out). It reads only the
// file, so it also proves the dump is complete: a truncated file fails.
func (t Tools) list(ctx context.Context, dump string) ([]string, error) {
	bin, err := t.path("pg_restore")
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--list", dump)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "%s is not a readable pg_dump archive: %s", dump, strings.TrimSpace(stderr.String()))
	}
	var out []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ";") {
			out = append(out, l)
		}
	}
	return out, nil
}

// checkStacyVMDump fails unless the table of contents holds the data of
// StacyVM's version table and of its sandboxes.
func checkStacyVMDump(path string, toc []string) error {
	for _, table := range []string{"goose_db_version", "sandboxes"} {
		if !hasTableData(toc, table) {
			return errs.New(errs.Invalid, "%s has no TABLE DATA entry for %s: not a StacyVM Postgres backup", path, table)
		}
	}
	return nil
}

// hasTableData finds "<id>; <oid> <oid> TABLE DATA <schema> <table> <owner>".
func hasTableData(toc []string, table string) bool {
	for _, l := range toc {
		f := strings.Fields(l)
		for i := 0; i+3 < len(f); i++ {
			if f[i] == "TABLE" && f[i+1] == "DATA" && f[i+3] == table {
				return true
			}
		}
	}
	return false
}

// BackupInfo describes a finished pg-backup.
type BackupInfo struct {
	Path     string        `json:"path"`
	Bytes    int64         `json:"bytes"`
	Schema   int64         `json:"schema_version"`
	Entries  int           `json:"toc_entries"`
	Database string        `json:"database"` // the DSN, password redacted
	Duration time.Duration `json:"duration_ns"`
}

// Backup writes a custom-format dump (pg_dump -Fc) of the database at dsn
// to dst, checks it with pg_restore --list and only then moves it into
// place. dst must not exist; the file is mode 0600. pg_dump reads one
// snapshot, so the backup is consistent while servers keep writing.
func Backup(ctx context.Context, dsn, dst string, tools Tools) (BackupInfo, error) {
	start := time.Now()
	dst, err := filepath.Abs(dst)
	if err != nil {
		return BackupInfo{}, errs.Wrap(errs.Invalid, err, "bad backup path")
	}
	if _, err := os.Stat(dst); err == nil {
		return BackupInfo{}, errs.New(errs.Conflict, "%s already exists; choose a new backup file", dst)
	}
	ms, err := Migrations(ctx, dsn)
	if err != nil {
		return BackupInfo{}, err
	}
	tmp := fmt.Sprintf("%s.partial-%d", dst, os.Getpid())
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	// Create the file first so pg_dump writes into a 0600 file whatever
	// the umask.
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "create %s", tmp)
	}
	if _, err := tools.run(ctx, "pg_dump", dsn, "", "--format=custom", "--file="+tmp); err != nil {
		return BackupInfo{}, err
	}
	toc, err := tools.list(ctx, tmp)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := checkStacyVMDump(dst, toc); err != nil {
		return BackupInfo{}, err
	}
	if err := syncFile(tmp); err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "sync %s", tmp)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "stat %s", tmp)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "move the backup to %s", dst)
	}
	return BackupInfo{Path: dst, Bytes: fi.Size(), Schema: ms.Current, Entries: len(toc),
		Database: Redact(dsn), Duration: time.Since(start)}, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
