package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/ops/redact"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// runLocal runs the CLI in-process for a local operations command.
func runLocal(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, environ: environ,
		build: buildInfo{Version: "v9.9.9", Commit: "c0ffee"}}
	code := run(context.Background(), args, e)
	return result{code, out.String(), errOut.String()}
}

// prodConfig copies deploy/stacyvm.production.yaml into dir with working
// key files and paths under dir.
func prodConfig(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "stacyvm.production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/etc/stacyvm/", dir+"/")
	s = strings.ReplaceAll(s, "/var/lib/stacyvm", filepath.Join(dir, "data"))
	os.WriteFile(filepath.Join(dir, "api-key"), []byte("3f9a1c7e5b2d4f6081a3c5e7f9b1d3e5\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "admin-key"), []byte("9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b\n"), 0o600)
	p := filepath.Join(dir, "stacyvm.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLI_ConfigLint(t *testing.T) {
	dir := t.TempDir()
	home := []string{"HOME=" + dir}
	r := runLocal(t, home, "config", "lint", "--production", "--file", prodConfig(t, dir))
	if r.code != 0 || !strings.Contains(r.stdout, "PASS: 0 error(s), 0 warning(s)") {
		t.Fatalf("production example: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runLocal(t, home, "config", "lint", "--production", "--format", "json")
	var rep struct {
		Passed   bool
		Findings []struct{ Rule, Remediation string }
	}
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Passed || len(rep.Findings) < 5 {
		t.Fatalf("default config: code %d, %s", r.code, r.stdout)
	}
	if r := runLocal(t, home, "config", "lint", "--format", "yaml"); r.code != exitUsage {
		t.Errorf("--format yaml: code %d, want %d", r.code, exitUsage)
	}
	if r := runLocal(t, home, "config", "lint", "--file", filepath.Join(dir, "missing.yaml")); r.code != 1 || !strings.Contains(r.stdout, "CFG002") {
		t.Errorf("missing file: code %d %s", r.code, r.stdout)
	}
}

func seedDB(t *testing.T, path string, n int) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
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

func TestCLI_DBBackupRestore(t *testing.T) {
	dir := t.TempDir()
	home := []string{"HOME=" + dir}
	db := filepath.Join(dir, "live.db")
	seedDB(t, db, 7)
	out := filepath.Join(dir, "b.db")
	r := runLocal(t, home, "db", "backup", out, "--database", db)
	if r.code != 0 || !strings.Contains(r.stdout, "integrity ok") {
		t.Fatalf("backup: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runLocal(t, home, "db", "backup", out, "--database", db); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("backup over a file: %d %s", r.code, r.stderr)
	}
	if r := runLocal(t, home, "db", "restore", out, "--database", db); r.code != exitUsage {
		t.Errorf("restore without --yes: code %d", r.code)
	}
	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte(strings.Repeat("garbage ", 1000)), 0o600)
	if r := runLocal(t, home, "db", "restore", bad, "--yes", "--database", db); r.code != 1 || !strings.Contains(r.stderr, "refusing") {
		t.Errorf("restore of garbage: %d %s", r.code, r.stderr)
	}
	r = runLocal(t, home, "-o", "json", "db", "restore", out, "--yes", "--database", db)
	var res sqlite.RestoreResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.SafetyCopy == "" {
		t.Fatalf("restore: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(res.SafetyCopy); err != nil {
		t.Errorf("safety copy: %v", err)
	}
	if r := runLocal(t, home, "db", "status", "--database", db); r.code != 0 || !strings.Contains(r.stdout, "integrity ok") {
		t.Errorf("status: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// oldDatabase creates a database at schema version 1, as an older stacyvm
// (before migrations 00002+) left it, with a row in it.
func oldDatabase(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sandboxes (id, state, created_at, updated_at) VALUES ('sb-0123456789ab', 'running', 1, 1)`); err != nil {
		t.Fatal(err)
	}
}

func TestCLI_UpgradeRehearseFromOlderSchema(t *testing.T) {
	known := sqlite.KnownMigrations()
	if len(known) < 2 {
		t.Skip("a single migration: no older schema to upgrade from")
	}
	dir := t.TempDir()
	cfg := prodConfig(t, dir)
	db := filepath.Join(dir, "old.db")
	oldDatabase(t, db)
	r := runLocal(t, []string{"HOME=" + dir}, "-o", "json", "--config", cfg, "upgrade", "rehearse", "--database", db, "--backup-dir", dir)
	var rep struct {
		Passed   bool
		Pending  []int64 `json:"pending_migrations"`
		Backup   string
		After    sqlite.MigrationState
		Rollback []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("code %d: %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if r.code != 0 || !rep.Passed {
		t.Fatalf("rehearsal failed: %s", r.stdout)
	}
	if !reflect.DeepEqual(rep.Pending, known[1:]) || rep.After.Current != known[len(known)-1] {
		t.Errorf("pending %v after %+v; want pending %v", rep.Pending, rep.After, known[1:])
	}
	if len(rep.Rollback) == 0 || !strings.Contains(strings.Join(rep.Rollback, "\n"), "db restore "+rep.Backup+" --yes") {
		t.Errorf("rollback = %v", rep.Rollback)
	}
	ms, _ := sqlite.Migrations(context.Background(), db)
	if ms.Current != 1 {
		t.Errorf("the live database was migrated to %d; rehearsal must not touch it", ms.Current)
	}
	if ms2, _ := sqlite.Migrations(context.Background(), rep.Backup); ms2.Current != 1 {
		t.Errorf("backup schema %d, want 1", ms2.Current)
	}
	// Text output names the pending migrations and the rollback.
	r = runLocal(t, []string{"HOME=" + dir}, "--config", cfg, "upgrade", "rehearse", "--database", db, "--backup-dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "pending migrations: [") || !strings.Contains(r.stdout, "rollback:") {
		t.Errorf("text: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestCLI_SupportBundleLeaksNoSecret plants a distinct secret in every
// secret:"true" config field (through the environment and a key file), in
// the server log, then checks no byte sequence of any secret is in any file
// of the bundle.
func TestCLI_SupportBundleLeaksNoSecret(t *testing.T) {
	dir := t.TempDir()
	cfgPath := prodConfig(t, dir)
	fileKey := "FILEKEY-" + strings.Repeat("q7", 16)
	adminKey := "ADMINFILEKEY-" + strings.Repeat("x9", 16)
	os.WriteFile(filepath.Join(dir, "api-key"), []byte(fileKey+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "admin-key"), []byte(adminKey+"\n"), 0o600)
	environ := []string{"HOME=" + dir}
	var planted []string
	for _, key := range redact.SecretFields() {
		if key == "auth.api_key" || key == "auth.admin_api_key" {
			continue // set through their *_file above (both would be an error)
		}
		v := fmt.Sprintf("PLANTED-%s-%x", strings.ReplaceAll(key, ".", "-"), time.Now().UnixNano())
		planted = append(planted, v)
		environ = append(environ, config.EnvName(key)+"="+v)
	}
	planted = append(planted, fileKey, adminKey)
	if len(planted) < 4 {
		t.Fatalf("only %d secret fields", len(planted))
	}
	logFile := filepath.Join(dir, "server.log")
	os.WriteFile(logFile, []byte("level=INFO msg=start\nlevel=WARN msg=\"oops key="+planted[0]+" dsn="+planted[len(planted)-1]+"\"\n"), 0o600)
	out := filepath.Join(dir, "bundle.tar.gz")
	r := runLocal(t, environ, "--config", cfgPath, "support", "bundle", out, "--log-file", logFile)
	if r.code != 0 {
		t.Fatalf("bundle: %d %s %s", r.code, r.stdout, r.stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	seen := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		seen[filepath.Base(h.Name)] = string(b)
		if filepath.Base(h.Name) == "config-error.txt" {
			t.Logf("config error: %s", b)
		}
		for _, s := range planted {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the planted secret %q", h.Name, s)
			}
		}
	}
	for _, want := range []string{"version.txt", "config.redacted.yaml", "lint.json", "doctor.json", "doctor.md", "diagnostics.json", "server.log", "environment.txt", "MANIFEST.txt"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("bundle lacks %s (has %v)", want, len(seen))
		}
	}
	if !strings.Contains(seen["config.redacted.yaml"], redact.Mask) || !strings.Contains(seen["server.log"], "msg=start") {
		t.Errorf("redacted config or log missing content:\n%s\n%s", seen["config.redacted.yaml"], seen["server.log"])
	}
	if !strings.Contains(seen["version.txt"], "v9.9.9") {
		t.Errorf("version.txt = %q", seen["version.txt"])
	}
}

// TestCLI_SupportBundleBrokenConfigStillRedacts: when the config does not
// load, key files it names are still scrubbed from every file.
func TestCLI_SupportBundleBrokenConfigStillRedacts(t *testing.T) {
	dir := t.TempDir()
	key := "BROKENCFG-" + strings.Repeat("k3", 16)
	os.WriteFile(filepath.Join(dir, "admin-key"), []byte(key+"\n"), 0o600)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("auth:\n  admin_api_key_file: "+filepath.Join(dir, "admin-key")+"\n  typo_key: 1\n"), 0o600)
	logFile := filepath.Join(dir, "server.log")
	os.WriteFile(logFile, []byte("leaked "+key+"\n"), 0o600)
	out := filepath.Join(dir, "b.tar.gz")
	if r := runLocal(t, []string{"HOME=" + dir}, "--config", cfg, "support", "bundle", out, "--log-file", logFile); r.code != 0 {
		t.Fatalf("bundle: %d %s", r.code, r.stderr)
	}
	raw, _ := os.ReadFile(out)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(zr)
	if bytes.Contains(all, []byte(key)) {
		t.Fatal("the admin key from a broken config's key file is in the bundle")
	}
	if !bytes.Contains(all, []byte("config-error.txt")) {
		t.Error("no config-error.txt")
	}
}

func TestCLI_Doctor(t *testing.T) {
	dir := t.TempDir()
	home := []string{"HOME=" + dir}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server:\n  prot: 1\n"), 0o600)
	r := runLocal(t, home, "--config", bad, "doctor", "--format", "markdown")
	if r.code != 1 || !strings.Contains(r.stdout, "| config | load | FAIL |") || !strings.Contains(r.stdout, "docs/operations.md#configuration") {
		t.Errorf("broken config: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runLocal(t, home, "doctor", "--format", "html"); r.code != exitUsage {
		t.Errorf("--format html: %d", r.code)
	}
	// The production example on this host: the lint part passes, so every
	// production line is PASS (host checks may fail here: gVisor may be absent).
	r = runLocal(t, home, "--config", prodConfig(t, dir), "doctor", "--production", "--format", "json")
	var rep struct {
		Checks []struct{ Section, Name, Status, Remedy string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	for _, c := range rep.Checks {
		if c.Section == "production" && c.Status != "PASS" {
			t.Errorf("production check %s = %s", c.Name, c.Status)
		}
		if c.Status == "FAIL" && c.Remedy == "" {
			t.Errorf("FAIL without remedy: %+v", c)
		}
	}
}
