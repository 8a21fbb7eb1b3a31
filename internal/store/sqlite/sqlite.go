// Package sqlite implements store.Store on an embedded SQLite file: WAL, a
// busy timeout, immediate write transactions and one writer per process.
//
// Driver: modernc.org/sqlite is pure Go, so the binary stays static, cgo-free
// and cross-compiles; it also exposes SQLite's online backup API for `db backup`.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
)

// Option configures Open.
type Option func(*options)

type options struct {
	busyTimeout time.Duration
	maxConns    int
	logger      *slog.Logger
}

// WithBusyTimeout sets how long a statement waits for another process's
// write lock before failing as Unavailable (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// WithMaxConns caps the connection pool (default 8). Writers are serialized
// anyway; the pool mostly serves concurrent readers.
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = n }
}

// WithLogger receives migration progress (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use; Close it when done.
type Store struct {
	db         *sql.DB
	migrations *goose.Provider
	// writer admits one write transaction at a time in this process, so local
	// writers queue in Go (fair, context-aware) instead of polling SQLite's
	// busy handler; busy_timeout still arbitrates between processes.
	writer    chan struct{}
	sandboxes *sandboxes
	templates *templates
	quotas    *quotas
}

// Open opens (creating if needed) the database file at path and its parent
// directory, and applies pending migrations. A file that is not a SQLite
// database is Invalid; an unreachable one is Unavailable.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{busyTimeout: 5 * time.Second, maxConns: 8}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errs.New(errs.Invalid, "sqlite: empty database path")
	}
	if o.maxConns < 1 {
		return nil, errs.New(errs.Invalid, "sqlite: max conns must be at least 1, got %d", o.maxConns)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "sqlite: bad database path %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sqlite: create database directory")
	}
	db, err := sql.Open("sqlite", dsn(abs, o.busyTimeout))
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sqlite: open %s", abs)
	}
	db.SetMaxOpenConns(o.maxConns)
	db.SetMaxIdleConns(o.maxConns)

	s := &Store{db: db, writer: make(chan struct{}, 1)}
	s.sandboxes = &sandboxes{s: s}
	s.templates = &templates{s: s}
	s.quotas = &quotas{s: s}
	if err := s.init(ctx, abs, o); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds the modernc DSN. Pragmas go in the DSN so every pooled
// connection gets them, not only the first; _txlock=immediate makes BEGIN
// take the write lock up front, so a read-then-write transaction never fails
// on lock upgrade.
func dsn(abs string, busy time.Duration) string {
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
		"_txlock=immediate",
	}
	// Escape the path: SQLite parses "file:" names as URIs, so '?', '#'
	// and '%' in a directory name would otherwise be misread.
	return "file:" + (&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath() + "?" + strings.Join(q, "&")
}

func (s *Store) init(ctx context.Context, abs string, o options) error {
	mode, err := s.journalMode(ctx, o.busyTimeout)
	if err != nil {
		if errs.Is(classify(ctx, err, ""), errs.Invalid) {
			return errs.Wrap(errs.Invalid, err, "sqlite: %s is not a SQLite database", abs)
		}
		return classify(ctx, err, "sqlite: open %s", abs)
	}
	if !strings.EqualFold(mode, "wal") {
		// WAL needs shared memory; some network filesystems refuse it and
		// SQLite then silently keeps a rollback journal.
		return errs.New(errs.Unavailable, "sqlite: %s: journal_mode is %q, want wal (network filesystem?)", abs, mode)
	}
	logOpt := goose.WithLogger(goose.NopLogger())
	if o.logger != nil {
		logOpt = goose.WithSlog(o.logger)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, migrations.SQLite(),
		goose.WithDisableGlobalRegistry(true), logOpt)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "sqlite: load migrations")
	}
	s.migrations = p
	if err := s.migrate(ctx); err != nil {
		return err
	}
	// Prepared after migrating: the statement needs the table.
	if s.sandboxes.get, err = s.db.PrepareContext(ctx, getSandboxSQL); err != nil {
		return classify(ctx, err, "sqlite: prepare")
	}
	return nil
}

// journalMode opens the first connection, which switches a new file to WAL.
// Two processes doing that at once on a fresh (rollback-journal) file can
// get SQLITE_BUSY without the busy handler ever running (SQLite's deadlock
// avoidance), so retry for up to the busy timeout.
func (s *Store) journalMode(ctx context.Context, busy time.Duration) (string, error) {
	deadline := time.Now().Add(busy)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		var mode string
		err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return mode, err
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", ctx.Err()
		case <-timer.C:
		}
	}
}

// migrate applies pending migrations. Two processes opening the same new file
// can race (both see version N, one applies N+1, the other then fails on
// "already exists"); the loser retries as long as the schema version moved,
// so a race resolves while a genuinely broken migration still fails.
func (s *Store) migrate(ctx context.Context) error {
	for {
		before, err := s.migrations.GetDBVersion(ctx)
		if err != nil && !errors.Is(err, goose.ErrVersionNotFound) {
			return classify(ctx, err, "sqlite: read schema version")
		}
		_, upErr := s.migrations.Up(ctx)
		if upErr == nil {
			return nil
		}
		after, err := s.migrations.GetDBVersion(ctx)
		if err != nil || after <= before {
			return classify(ctx, upErr, "sqlite: apply migrations")
		}
	}
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	v, err := s.migrations.GetDBVersion(ctx)
	if err != nil {
		return 0, classify(ctx, err, "sqlite: read schema version")
	}
	return v, nil
}

// Sandboxes returns the sandbox records.
func (s *Store) Sandboxes() store.Sandboxes { return s.sandboxes }

// Templates returns the template repository.
func (s *Store) Templates() store.Templates { return s.templates }

// Quotas returns the per-owner quota repository.
func (s *Store) Quotas() store.Quotas { return s.quotas }

// Ping checks the database file is readable; it reads the header, not only
// the connection.
func (s *Store) Ping(ctx context.Context) error {
	var v int64
	if err := s.db.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
		return classify(ctx, err, "database unavailable")
	}
	return nil
}

// Close closes every pooled connection. The WAL is checkpointed by SQLite
// when the last connection closes.
func (s *Store) Close() error {
	if s.sandboxes.get != nil {
		_ = s.sandboxes.get.Close()
	}
	if err := s.db.Close(); err != nil {
		return errs.Wrap(errs.Internal, err, "sqlite: close")
	}
	return nil
}

// DB exposes the pool for maintenance tooling (online backup, doctor). Do
// not write through it while the Store is serving.
func (s *Store) DB() *sql.DB { return s.db }

// writeTx runs fn in an immediate transaction while holding this process's
// writer slot; fn's error rolls back and is returned unchanged.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return classify(ctx, ctx.Err(), "database write cancelled")
	}
	defer func() { <-s.writer }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return classify(ctx, err, "database unavailable")
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit; also runs if fn panics
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return classify(ctx, err, "database commit failed")
	}
	return nil
}

var _ store.Store = (*Store)(nil)
