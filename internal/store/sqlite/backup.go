package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
)

// Maintenance helpers for `stacyvm db`, `doctor` and `upgrade rehearse`.
// They open the file by path on their own connection, never migrate it, and
// may run while a server holds the same database open (SQLite arbitrates
// between processes; WAL lets readers run beside the writer).

// openMaintenance opens path without migrating. readOnly opens it with
// mode=ro so a check can never change the file.
func openMaintenance(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "sqlite: bad path %q", path)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "sqlite: %s does not exist", abs)
	}
	q := []string{"_pragma=busy_timeout(10000)"}
	if readOnly {
		q = append(q, "mode=ro")
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath()+"?"+strings.Join(q, "&"))
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sqlite: open %s", abs)
	}
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		_ = db.Close()
		return nil, classify(ctx, err, "sqlite: %s is not a readable SQLite database", abs)
	}
	return db, nil
}

// IntegrityCheck runs PRAGMA integrity_check on the file at path and
// returns the problems it lists (nil when the answer is "ok"). A file that
// is not a SQLite database is an Invalid error.
func IntegrityCheck(ctx context.Context, path string) ([]string, error) {
	db, err := openMaintenance(ctx, path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return integrity(ctx, db)
}

func integrity(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, classify(ctx, err, "sqlite: integrity_check")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, classify(ctx, err, "sqlite: integrity_check")
		}
		if s != "ok" {
			out = append(out, s)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, err, "sqlite: integrity_check")
	}
	return out, nil
}

// MigrationState is a database's schema version against this binary's
// embedded migrations.
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
	_ = fs.WalkDir(migrations.SQLite(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if m := migrationFile.FindStringSubmatch(d.Name()); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			out = append(out, v)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Migrations reads the schema state of the file at path without changing
// it (goose's version table is read directly).
func Migrations(ctx context.Context, path string) (MigrationState, error) {
	db, err := openMaintenance(ctx, path, true)
	if err != nil {
		return MigrationState{}, err
	}
	defer db.Close()
	st := MigrationState{Applied: []int64{}, Pending: []int64{}, Unknown: []int64{}}
	known := KnownMigrations()
	if len(known) > 0 {
		st.Latest = known[len(known)-1]
	}
	applied := map[int64]bool{}
	var exists int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='goose_db_version'").Scan(&exists); err != nil {
		return st, classify(ctx, err, "sqlite: read schema version")
	}
	if exists > 0 {
		rows, err := db.QueryContext(ctx, "SELECT version_id, is_applied FROM goose_db_version ORDER BY id")
		if err != nil {
			return st, classify(ctx, err, "sqlite: read schema version")
		}
		for rows.Next() {
			var v int64
			var ok bool
			if err := rows.Scan(&v, &ok); err != nil {
				rows.Close()
				return st, classify(ctx, err, "sqlite: read schema version")
			}
			applied[v] = ok // the last row for a version wins (down then up)
		}
		rows.Close()
	}
	isKnown := map[int64]bool{}
	for _, v := range known {
		isKnown[v] = true
		if applied[v] {
			st.Applied = append(st.Applied, v)
		} else {
			st.Pending = append(st.Pending, v)
		}
	}
	for v, ok := range applied {
		if ok && v > 0 && !isKnown[v] {
			st.Unknown = append(st.Unknown, v)
		}
		if ok && v > st.Current {
			st.Current = v
		}
	}
	sort.Slice(st.Unknown, func(i, j int) bool { return st.Unknown[i] < st.Unknown[j] })
	return st, nil
}

// BackupInfo describes a finished backup.
type BackupInfo struct {
	Path     string        `json:"path"`
	Bytes    int64         `json:"bytes"`
	Schema   int64         `json:"schema_version"`
	Duration time.Duration `json:"duration_ns"`
}

// Backup writes a consistent copy of the live database at src to dst with
// VACUUM INTO (one read transaction: a snapshot even while a server writes),
// checks it with integrity_check and only then moves it to dst. dst must
// not exist; the copy is mode 0600.
func Backup(ctx context.Context, src, dst string) (BackupInfo, error) {
	start := time.Now()
	dst, err := filepath.Abs(dst)
	if err != nil {
		return BackupInfo{}, errs.Wrap(errs.Invalid, err, "bad backup path")
	}
	if _, err := os.Stat(dst); err == nil {
		return BackupInfo{}, errs.New(errs.Conflict, "%s already exists; choose a new backup file", dst)
	}
	tmp := fmt.Sprintf("%s.partial-%d", dst, os.Getpid())
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	db, err := openMaintenance(ctx, src, true)
	if err != nil {
		return BackupInfo{}, err
	}
	defer db.Close()
	// The target is a bound parameter: VACUUM INTO takes an expression.
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return BackupInfo{}, classify(ctx, err, "sqlite: backup of %s failed", src)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "backup: chmod")
	}
	if probs, err := IntegrityCheck(ctx, tmp); err != nil || len(probs) > 0 {
		return BackupInfo{}, errs.New(errs.Internal, "backup failed its integrity check: %v %s", err, strings.Join(probs, "; "))
	}
	ms, err := Migrations(ctx, tmp)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := syncFile(tmp); err != nil {
		return BackupInfo{}, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return BackupInfo{}, errs.Wrap(errs.Unavailable, err, "backup: move into place")
	}
	fi, _ := os.Stat(dst)
	return BackupInfo{Path: dst, Bytes: fi.Size(), Schema: ms.Current, Duration: time.Since(start)}, nil
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Restored   string `json:"restored"`
	SafetyCopy string `json:"safety_copy,omitempty"` // "" when there was no database to keep
	Schema     int64  `json:"schema_version"`
}

// Restore replaces the database at dst with the backup at src. It refuses
// a backup that fails integrity_check or carries migrations this binary
// does not know, then keeps a timestamped safety copy of the current
// database (dst.pre-restore-<UTC time>) before swapping the file in. The
// server must be stopped: a running server would keep writing to the old
// file.
func Restore(ctx context.Context, src, dst string, now time.Time) (RestoreResult, error) {
	probs, err := IntegrityCheck(ctx, src)
	if err != nil {
		return RestoreResult{}, errs.Wrap(errs.Invalid, err, "refusing to restore %s: not a readable SQLite database", src)
	}
	if len(probs) > 0 {
		return RestoreResult{}, errs.New(errs.Invalid, "refusing to restore %s: integrity_check failed: %s", src, strings.Join(probs, "; "))
	}
	ms, err := Migrations(ctx, src)
	if err != nil {
		return RestoreResult{}, err
	}
	if len(ms.Unknown) > 0 {
		return RestoreResult{}, errs.New(errs.Invalid, "refusing to restore %s: it has migrations %v this binary does not know (made by a newer stacyvm)", src, ms.Unknown)
	}
	dst, err = filepath.Abs(dst)
	if err != nil {
		return RestoreResult{}, errs.Wrap(errs.Invalid, err, "bad database path")
	}
	res := RestoreResult{Restored: dst, Schema: ms.Current}
	if _, err := os.Stat(dst); err == nil {
		res.SafetyCopy = dst + ".pre-restore-" + now.UTC().Format("20060102T150405Z")
		if _, err := Backup(ctx, dst, res.SafetyCopy); err != nil {
			return RestoreResult{}, errs.Wrap(errs.ClassOf(err), err, "safety copy of the current database failed; nothing was changed")
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return RestoreResult{}, errs.Wrap(errs.Unavailable, err, "restore: create directory")
	}
	tmp := fmt.Sprintf("%s.restoring-%d", dst, os.Getpid())
	defer os.Remove(tmp)
	if err := copyFile(src, tmp); err != nil {
		return RestoreResult{}, err
	}
	// The old WAL and shared-memory files belong to the old database.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(dst + suffix); err != nil && !os.IsNotExist(err) {
			return RestoreResult{}, errs.Wrap(errs.Unavailable, err, "restore: remove %s%s", dst, suffix)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return RestoreResult{}, errs.Wrap(errs.Unavailable, err, "restore: move into place")
	}
	return res, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "open %s", src)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "create %s", dst)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return errs.Wrap(errs.Unavailable, err, "copy to %s", dst)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return errs.Wrap(errs.Unavailable, err, "sync %s", dst)
	}
	return out.Close()
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "sync %s", p)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "sync %s", p)
	}
	return nil
}
