package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/store"
)

// RehearseOptions configure Rehearse.
type RehearseOptions struct {
	DSN string // the live database; the scratch database goes on its server
	// From is a pg-backup file to rehearse on; "" dumps the live database.
	From   string
	Tools  Tools
	Binary string // how to call this binary in printed commands
	Now    time.Time
}

// Step is one stage of a rehearsal.
type Step struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// RehearseReport is the result of Rehearse.
type RehearseReport struct {
	Passed          bool           `json:"passed"`
	Source          string         `json:"source"` // the backup file, or the live database (DSN redacted)
	Scratch         string         `json:"scratch_database"`
	Steps           []Step         `json:"steps"`
	Before          MigrationState `json:"before"`
	After           MigrationState `json:"after"`
	Pending         []int64        `json:"pending_migrations"`
	Sandboxes       int            `json:"sandboxes"`
	MigrateDuration string         `json:"migrate_duration,omitempty"`
	Rollback        []string       `json:"rollback"`
}

func (r *RehearseReport) step(name string, err error, ok string) bool {
	s := Step{Name: name, OK: err == nil, Detail: ok}
	if err != nil {
		s.Detail = err.Error()
	}
	r.Steps = append(r.Steps, s)
	return s.OK
}

// Rehearse restores the backup o.From (or a fresh dump of the live
// database) into a scratch database on the same server, applies this
// binary's migrations there, reads the result back through the store, and
// drops the scratch database again. The live database is only read. The
// DSN's role needs CREATEDB.
func Rehearse(ctx context.Context, o RehearseOptions) *RehearseReport {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Binary == "" {
		o.Binary = "stacyvm"
	}
	r := &RehearseReport{Steps: []Step{}, Pending: []int64{}, Rollback: []string{}, Source: o.From,
		Before: MigrationState{Applied: []int64{}, Pending: []int64{}, Unknown: []int64{}}}
	r.After = r.Before
	defer func() {
		r.Passed = len(r.Steps) > 0
		for _, s := range r.Steps {
			r.Passed = r.Passed && s.OK
		}
	}()
	if r.Source == "" {
		r.Source = "live database " + Redact(o.DSN)
	}

	live, err := Migrations(ctx, o.DSN)
	if !r.step("read the live schema version", err, fmt.Sprintf("version %d, latest known %d, pending %v", live.Current, live.Latest, live.Pending)) {
		return r
	}
	r.Rollback = rollback(o)
	if len(live.Unknown) > 0 {
		r.step("binary knows the live schema", fmt.Errorf("applied migrations %v are newer than this binary (latest %d): run the newer binary", live.Unknown, live.Latest), "")
		return r
	}

	dump := o.From
	if dump == "" {
		dir, err := os.MkdirTemp("", "stacyvm-pg-rehearse-*")
		if !r.step("dump the live database", err, "") {
			return r
		}
		defer os.RemoveAll(dir)
		dump = filepath.Join(dir, "live.dump")
		_, err = o.Tools.run(ctx, "pg_dump", o.DSN, "", "--format=custom", "--file="+dump)
		if !r.step("dump the live database", err, "pg_dump -Fc snapshot") {
			return r
		}
	}
	toc, err := o.Tools.list(ctx, dump)
	if err == nil {
		err = checkStacyVMDump(dump, toc)
	}
	if !r.step("check the dump", err, fmt.Sprintf("%d entries (pg_restore --list)", len(toc))) {
		return r
	}

	r.Scratch = scratchName(o.Now)
	scratchDSN, err := WithDatabase(o.DSN, r.Scratch)
	if err == nil {
		err = createDatabase(ctx, o.DSN, r.Scratch)
	}
	if !r.step("create scratch database", err, r.Scratch) {
		return r
	}
	defer func() {
		// The scratch database goes even when ctx was cancelled.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err := DropDatabase(dctx, o.DSN, r.Scratch)
		r.step("drop scratch database", err, r.Scratch)
	}()

	_, err = o.Tools.run(ctx, "pg_restore", o.DSN, r.Scratch, "--no-owner", "--no-acl", "--exit-on-error", dump)
	if !r.step("restore into the scratch database", err, "pg_restore --no-owner --no-acl") {
		return r
	}
	before, err := Migrations(ctx, scratchDSN)
	r.Before = before
	r.Pending = append([]int64{}, before.Pending...)
	if !r.step("read the restored schema version", err, fmt.Sprintf("version %d, pending %v", before.Current, before.Pending)) {
		return r
	}

	start := time.Now()
	st, err := Open(ctx, scratchDSN) // applies this binary's migrations under the lock
	r.MigrateDuration = time.Since(start).Round(time.Millisecond).String()
	if !r.step("apply migrations to the scratch database", err,
		fmt.Sprintf("%d migration(s) %v applied in %s", len(before.Pending), before.Pending, r.MigrateDuration)) {
		return r
	}
	r.Sandboxes, err = st.Sandboxes().Count(ctx, store.SandboxFilter{})
	closeErr := st.Close()
	if err == nil {
		err = closeErr
	}
	if !r.step("read the migrated data", err, fmt.Sprintf("%d sandbox record(s)", r.Sandboxes)) {
		return r
	}
	after, err := Migrations(ctx, scratchDSN)
	r.After = after
	if err == nil && (len(after.Pending) > 0 || after.Current != after.Latest) {
		err = fmt.Errorf("schema version %d of %d after migrating, pending %v", after.Current, after.Latest, after.Pending)
	}
	r.step("scratch database at the latest schema", err, fmt.Sprintf("schema version %d", after.Current))
	return r
}

// rollback is what undoes an upgrade that went wrong: recreate the database
// from the pre-upgrade backup (pg_restore --clean --create drops and
// recreates it by the name in the dump), then run the old binary.
func rollback(o RehearseOptions) []string {
	backup := o.From
	pre := []string{}
	if backup == "" {
		backup = "stacyvm-pre-upgrade.dump"
		pre = append(pre, fmt.Sprintf("%s db pg-backup %s   # BEFORE the upgrade, with the new or old binary", o.Binary, backup))
	}
	maint, _, err := libpqDSN(o.DSN, "postgres")
	if err != nil {
		maint = "<DSN of the maintenance database postgres>"
	}
	return append(pre,
		"systemctl stop stacyvm   # on every control plane using this database",
		fmt.Sprintf("pg_restore --clean --if-exists --create --no-owner --exit-on-error --dbname=%s %s   # password: ~/.pgpass or PGPASSWORD",
			shellQuote(maint), shellQuote(backup)),
		"reinstall the previous stacyvm binary",
		"systemctl start stacyvm",
	)
}

// shellQuote quotes s for a POSIX shell, so a printed command can be
// pasted as is.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// scratchName is a database name no one else uses: the time and 4 random
// bytes, under Postgres' 63-byte limit.
func scratchName(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "stacyvm_rehearse_" + now.UTC().Format("20060102t150405") + "_" + hex.EncodeToString(b[:])
}

// createDatabase creates database name on the server of dsn.
func createDatabase(ctx context.Context, dsn, name string) error {
	c, err := connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return classify(ctx, err, "create database %s (the role needs CREATEDB)", name)
	}
	return nil
}

// DropDatabase drops database name on the server of dsn, closing any
// connection still open to it (WITH (FORCE), Postgres 13+). A database
// that does not exist is not an error.
func DropDatabase(ctx context.Context, dsn, name string) error {
	c, err := connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return classify(ctx, err, "drop database %s", name)
	}
	return nil
}

// Text renders r for a terminal.
func (r *RehearseReport) Text(w io.Writer) {
	fmt.Fprintf(w, "postgres migration rehearsal of %s\n", r.Source)
	for _, s := range r.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, s.Name, s.Detail)
	}
	fmt.Fprintf(w, "schema version before: %d, after: %d (latest %d)\n", r.Before.Current, r.After.Current, r.After.Latest)
	fmt.Fprintf(w, "pending migrations: %v\n", r.Pending)
	if len(r.Rollback) > 0 {
		fmt.Fprintln(w, "rollback:")
		for _, c := range r.Rollback {
			fmt.Fprintln(w, "  "+c)
		}
	}
	verdict := "PASS: safe to replace the binary (docs/operations.md#postgres)"
	if !r.Passed {
		verdict = "FAIL: fix the failed steps before upgrading"
	}
	fmt.Fprintln(w, verdict)
}
