package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
	"github.com/stacyvm/stacyvm/internal/store/postgres/pgtest"
)

// seedPG migrates the database at dsn and creates n sandboxes in it.
func seedPG(t *testing.T, dsn string, n int) {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i := range n {
		if err := st.Sandboxes().Create(context.Background(), &store.Sandbox{ID: fmt.Sprintf("sb-%012x", i), State: "running",
			Provider: "docker", Image: "img", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}

// oldPG leaves the database at dsn at schema version 1, as an older
// stacyvm did, with one sandbox row.
func oldPG(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sandboxes (id, state, created_at, updated_at) VALUES ('sb-0123456789ab', 'running', now(), now())`); err != nil {
		t.Fatal(err)
	}
}

// pgReport is the part of postgres.RehearseReport the tests read.
type pgReport struct {
	Passed    bool
	Scratch   string  `json:"scratch_database"`
	Pending   []int64 `json:"pending_migrations"`
	Before    postgres.MigrationState
	After     postgres.MigrationState
	Sandboxes int
	Rollback  []string
	Steps     []postgres.Step
}

func TestCLI_DBPGBackupAndRehearse(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.Database(t)
	seedPG(t, dsn, 7)
	dir := t.TempDir()
	home := []string{"HOME=" + dir}
	pgBin := "--pg-bin=" + srv.BinDir()
	if srv.BinDir() == "" {
		pgBin = "--pg-bin=" // an external server: PATH
	}
	known := postgres.KnownMigrations()
	latest := known[len(known)-1]

	// pg-backup, from a config with database.dsn_file (the usual setup).
	dsnFile := filepath.Join(dir, "dsn")
	os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600)
	cfg := filepath.Join(dir, "stacyvm.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\ndatabase:\n  driver: postgres\n  dsn_file: "+dsnFile+"\n"), 0o600)
	out := filepath.Join(dir, "b.dump")
	r := runLocal(t, home, "--config", cfg, "db", "pg-backup", out, pgBin)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("schema version %d", latest)) || !strings.Contains(r.stdout, "archive entries verified") {
		t.Fatalf("pg-backup: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if r := runLocal(t, home, "db", "pg-backup", out, "--dsn", dsn, pgBin); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("pg-backup over a file: %d %s", r.code, r.stderr)
	}
	// The SQLite commands refuse a Postgres config and say what to use.
	if r := runLocal(t, home, "--config", cfg, "db", "backup", filepath.Join(dir, "x.db")); r.code != 1 || !strings.Contains(r.stderr, "use stacyvm db pg-backup") {
		t.Errorf("db backup with a postgres config: %d %s", r.code, r.stderr)
	}
	// Without a Postgres config the pg commands ask for one.
	if r := runLocal(t, home, "db", "pg-backup", filepath.Join(dir, "y.dump")); r.code != exitUsage || !strings.Contains(r.stderr, "--dsn") {
		t.Errorf("pg-backup without a DSN: %d %s", r.code, r.stderr)
	}

	// A password reaches pg_dump and pg_restore (PGPASSFILE) and is never
	// printed.
	pw := srv.WithPassword(t, dsn)
	r = runLocal(t, home, "-o", "json", "db", "pg-rehearse", "--dsn", pw, pgBin)
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, pgtest.Password) {
		t.Fatalf("pg-rehearse with a password: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runLocal(t, home, "db", "pg-backup", filepath.Join(dir, "pw.dump"), "--dsn", pw, pgBin); r.code != 0 || strings.Contains(r.stdout+r.stderr, pgtest.Password) {
		t.Fatalf("pg-backup with a password: %d %s %s", r.code, r.stdout, r.stderr)
	}
	bad := strings.Replace(pw, "p@ss", "wrong", 1)
	if r := runLocal(t, home, "db", "pg-backup", filepath.Join(dir, "bad.dump"), "--dsn", bad, pgBin); r.code != 1 || !strings.Contains(r.stderr, "password authentication failed") {
		t.Errorf("pg-backup with a wrong password: %d %s", r.code, r.stderr)
	}

	// pg-rehearse on the backup, then on the live database.
	r = runLocal(t, home, "db", "pg-rehearse", "--from", out, "--dsn", dsn, pgBin)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("schema version before: %d, after: %d", latest, latest)) ||
		!strings.Contains(r.stdout, "rollback:") || !strings.Contains(r.stdout, "PASS") {
		t.Fatalf("pg-rehearse --from: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runLocal(t, home, "-o", "json", "--config", cfg, "db", "pg-rehearse", pgBin)
	var rep pgReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.Passed || rep.Sandboxes != 7 {
		t.Fatalf("pg-rehearse of the live database: %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	assertNoScratch(t, srv.AdminDSN(t), rep.Scratch)

	// The printed rollback restores the backup over a changed database.
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sandboxes().Purge(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sandboxes().Update(context.Background(), "sb-000000000000", func(sb *store.Sandbox) error { sb.State = "error"; return nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r = runLocal(t, home, "-o", "json", "db", "pg-rehearse", "--from", out, "--dsn", dsn, pgBin)
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Passed {
		t.Fatalf("pg-rehearse --from: %v %s", err, r.stdout)
	}
	var restore string
	for _, l := range rep.Rollback {
		if strings.HasPrefix(l, "pg_restore ") {
			restore = l
		}
	}
	cmd := exec.Command("sh", "-c", restore)
	cmd.Env = append(os.Environ(), "PATH="+srv.BinDir()+":"+os.Getenv("PATH"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rollback %q: %v\n%s", restore, err, b)
	}
	st, err = postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if sb, err := st.Sandboxes().Get(context.Background(), "sb-000000000000"); err != nil || sb.State != "running" {
		t.Errorf("after the rollback: %+v, %v; want the backed-up record", sb, err)
	}
}

// A rehearsal from an older schema applies the pending migrations to the
// scratch copy only: the live database stays at its version.
func TestCLI_DBPGRehearseFromOlderSchema(t *testing.T) {
	known := postgres.KnownMigrations()
	if len(known) < 2 {
		t.Skip("a single migration: no older schema to upgrade from")
	}
	srv := pgtest.Start(t)
	dsn := srv.Database(t)
	oldPG(t, dsn)
	dir := t.TempDir()
	pgBin := "--pg-bin=" + srv.BinDir()
	r := runLocal(t, []string{"HOME=" + dir}, "-o", "json", "db", "pg-rehearse", "--dsn", dsn, pgBin)
	var rep pgReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.Passed {
		t.Fatalf("pg-rehearse: %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if rep.Before.Current != 1 || !reflect.DeepEqual(rep.Pending, known[1:]) || rep.After.Current != known[len(known)-1] || rep.Sandboxes != 1 {
		t.Errorf("before %d, pending %v, after %d, sandboxes %d; want 1, %v, %d, 1",
			rep.Before.Current, rep.Pending, rep.After.Current, rep.Sandboxes, known[1:], known[len(known)-1])
	}
	if ms, err := postgres.Migrations(context.Background(), dsn); err != nil || ms.Current != 1 {
		t.Errorf("live database at %d, %v; the rehearsal must not migrate it", ms.Current, err)
	}
	if len(rep.Rollback) == 0 || !strings.Contains(strings.Join(rep.Rollback, "\n"), "db pg-backup") {
		t.Errorf("rollback = %v; want a pg-backup step first", rep.Rollback)
	}
	assertNoScratch(t, srv.AdminDSN(t), rep.Scratch)
}

// assertNoScratch fails if the rehearsal left its scratch database.
func assertNoScratch(t *testing.T, admin, scratch string) {
	t.Helper()
	if scratch == "" {
		t.Fatal("the report names no scratch database")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, scratch).Scan(&n); err != nil || n != 0 {
		t.Errorf("scratch database %s still exists (%d, %v)", scratch, n, err)
	}
}
