// Package upgrade rehearses an upgrade of a StacyVM installation with the
// running binary: production lint, a backup of the live database, the
// binary's migrations applied to a copy (never the live file), an integrity
// check of the result, and the exact rollback command.
package upgrade

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stacyvm/stacyvm/internal/ops/lint"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// Options configure Rehearse.
type Options struct {
	ConfigFile string
	Database   string // the live SQLite file
	BackupDir  string // where the pre-upgrade backup goes ("" = next to Database)
	Env        []string
	Home       string
	Binary     string // how to call this binary in printed commands
	Keep       bool   // keep the migrated copy for inspection
	Now        time.Time
}

// Step is one stage of the rehearsal.
type Step struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is the rehearsal result.
type Report struct {
	Passed          bool                  `json:"passed"`
	Steps           []Step                `json:"steps"`
	Before          sqlite.MigrationState `json:"before"`
	After           sqlite.MigrationState `json:"after"`
	Pending         []int64               `json:"pending_migrations"`
	Backup          string                `json:"backup,omitempty"`
	MigratedCopy    string                `json:"migrated_copy,omitempty"`
	MigrateDuration string                `json:"migrate_duration,omitempty"`
	Lint            *lint.Report          `json:"lint"`
	Rollback        []string              `json:"rollback"`
}

func (r *Report) step(name string, ok bool, format string, args ...any) bool {
	r.Steps = append(r.Steps, Step{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	return ok
}

// Rehearse runs the rehearsal. It never writes to the live database: the
// backup is read through VACUUM INTO and migrations run on a copy.
func Rehearse(ctx context.Context, o Options) *Report {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Binary == "" {
		o.Binary = "stacyvm"
	}
	r := &Report{Steps: []Step{}, Pending: []int64{}, Rollback: []string{}}
	defer func() {
		r.Passed = true
		for _, s := range r.Steps {
			r.Passed = r.Passed && s.OK
		}
	}()

	r.Lint = lint.Run(lint.Options{File: o.ConfigFile, Env: o.Env, Home: o.Home, Production: true})
	r.step("config lint --production", r.Lint.Passed, "%d error(s), %d warning(s)", r.Lint.Errors, r.Lint.Warnings)

	before, err := sqlite.Migrations(ctx, o.Database)
	if !r.step("read schema state", err == nil, "%s", errText(err, fmt.Sprintf("schema version %d; this binary knows up to %d", before.Current, before.Latest))) {
		return r
	}
	r.Before, r.Pending = before, before.Pending
	if len(before.Unknown) > 0 {
		r.step("binary knows the schema", false, "the database has migrations %v this binary does not know: it is older than the database", before.Unknown)
		return r
	}
	dir := o.BackupDir
	if dir == "" {
		dir = filepath.Dir(o.Database)
	}
	stamp := o.Now.UTC().Format("20060102T150405Z")
	r.Backup = filepath.Join(dir, "stacyvm-pre-upgrade-"+stamp+".db")
	info, err := sqlite.Backup(ctx, o.Database, r.Backup)
	if !r.step("backup", err == nil, "%s", errText(err, fmt.Sprintf("%s (%d bytes, integrity ok)", r.Backup, info.Bytes))) {
		r.Backup = ""
		return r
	}
	r.Rollback = []string{
		"systemctl stop stacyvm",
		fmt.Sprintf("%s db restore %s --yes --database %s   # with the OLD binary", o.Binary, r.Backup, o.Database),
		"reinstall the previous stacyvm binary",
		"systemctl start stacyvm",
	}

	cp := filepath.Join(dir, "stacyvm-upgrade-rehearsal-"+stamp+".db")
	if err := copyFile(r.Backup, cp); !r.step("copy for migration", err == nil, "%s", errText(err, cp)) {
		return r
	}
	if o.Keep {
		r.MigratedCopy = cp
	} else {
		defer removeDB(cp)
	}
	start := time.Now()
	st, err := sqlite.Open(ctx, cp) // applies this binary's migrations
	if err == nil {
		err = st.Close()
	}
	r.MigrateDuration = time.Since(start).Round(time.Millisecond).String()
	if !r.step("apply migrations to the copy", err == nil, "%s", errText(err, fmt.Sprintf("%d migration(s) %v applied in %s", len(before.Pending), before.Pending, r.MigrateDuration))) {
		return r
	}
	after, err := sqlite.Migrations(ctx, cp)
	r.After = after
	r.step("copy at the latest schema", err == nil && len(after.Pending) == 0 && after.Current == after.Latest,
		"%s", errText(err, fmt.Sprintf("schema version %d, %d pending", after.Current, len(after.Pending))))
	probs, err := sqlite.IntegrityCheck(ctx, cp)
	r.step("integrity_check of the migrated copy", err == nil && len(probs) == 0, "%s", errText(err, fmt.Sprintf("%d problem(s)", len(probs))))
	return r
}

func errText(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func removeDB(p string) {
	for _, s := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(p + s)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Text renders r for a terminal.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintln(w, "upgrade rehearsal")
	for _, s := range r.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, s.Name, s.Detail)
	}
	if r.Lint != nil && !r.Lint.Passed {
		for _, f := range r.Lint.Findings {
			if f.Severity == lint.Error {
				fmt.Fprintf(w, "       %s %s (fix: %s)\n", f.Rule, f.Message, f.Remediation)
			}
		}
	}
	fmt.Fprintf(w, "pending migrations: %v\n", r.Pending)
	if len(r.Rollback) > 0 {
		fmt.Fprintln(w, "rollback:")
		for _, c := range r.Rollback {
			fmt.Fprintln(w, "  "+c)
		}
	}
	verdict := "PASS: safe to replace the binary (docs/operations.md#upgrades)"
	if !r.Passed {
		verdict = "FAIL: fix the failed steps before upgrading"
	}
	fmt.Fprintln(w, verdict)
}
