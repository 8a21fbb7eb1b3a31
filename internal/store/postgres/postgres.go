// Package postgres implements store.Store on PostgreSQL (13 or newer) with
// pgx: one connection pool per process, read-modify-write updates as
// transactions with SELECT ... FOR UPDATE, and goose migrations applied
// under a session advisory lock so several control planes may start at once.
//
// It is the store for operators who already run Postgres (managed backups,
// replicas, point-in-time recovery). Cluster features (workers, leases)
// are not part of it yet.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
)

// migrationLockID is the session advisory lock migrations run under. Any
// fixed 64-bit number works; advisory locks are per database, so two
// StacyVM databases on one server never contend.
const migrationLockID int64 = 0x5374616379564d01 // "StacyVM" + 1

// Option configures Open.
type Option func(*options)

type options struct {
	connectTimeout time.Duration
	maxConns       int32
	logger         *slog.Logger
}

// WithConnectTimeout bounds each new connection (default 10s) when the DSN
// sets no connect_timeout, so an unreachable server fails as Unavailable
// instead of hanging on the kernel's TCP timeout.
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.connectTimeout = d }
}

// WithMaxConns caps the pool (default: pgx's, max(4, CPUs), or the DSN's
// pool_max_conns).
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = int32(min(n, 1<<20)) }
}

// WithLogger receives migration progress (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Store is the Postgres implementation of store.Store. It is safe for
// concurrent use, also by several processes on one database; Close it
// when done.
type Store struct {
	pool       *pgxpool.Pool
	db         *sql.DB // the pool seen through database/sql, for goose
	migrations *goose.Provider
	sandboxes  *sandboxes
	templates  *templates
	quotas     *quotas
}

// Open connects to the database named by dsn (a libpq keyword/value string
// or a postgres:// URL, see docs/operations.md#postgres) and applies pending
// migrations. An unparsable DSN is Invalid; an unreachable server, failed
// authentication or a missing database is Unavailable.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{connectTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if dsn == "" {
		return nil, errs.New(errs.Invalid, "postgres: empty DSN")
	}
	if o.maxConns < 0 {
		return nil, errs.New(errs.Invalid, "postgres: max conns must not be negative, got %d", o.maxConns)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: keep it
		// out of the message and the chain.
		return nil, errs.New(errs.Invalid, "postgres: cannot parse the DSN (%s)", Redact(dsn))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.connectTimeout
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, err, "postgres: open")
	}
	s := &Store{pool: pool, db: stdlib.OpenDBFromPool(pool)}
	s.sandboxes = &sandboxes{s: s}
	s.templates = &templates{s: s}
	s.quotas = &quotas{s: s}
	if err := s.init(ctx, o); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, o options) error {
	if err := s.pool.Ping(ctx); err != nil {
		return classify(ctx, err, "postgres: connect")
	}
	p, err := newMigrator(s.db, o.logger)
	if err != nil {
		return err
	}
	s.migrations = p
	if _, err := p.Up(ctx); err != nil {
		return classify(ctx, err, "postgres: apply migrations")
	}
	return nil
}

// newMigrator returns a goose provider for db whose Up and Down run under
// the migration advisory lock.
func newMigrator(db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	logOpt := goose.WithLogger(goose.NopLogger())
	if log != nil {
		logOpt = goose.WithSlog(log)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres(),
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(advisoryLock{}), logOpt)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "postgres: load migrations")
	}
	return p, nil
}

// advisoryLock is a goose.SessionLocker that blocks in pg_advisory_lock
// (goose's own polls every 5 seconds): a second control plane starting
// beside the first waits exactly as long as the migration takes, bounded
// by its context.
type advisoryLock struct{}

func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID)
	return err
}

func (advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("migration advisory lock was not held")
	}
	return nil
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	v, err := s.migrations.GetDBVersion(ctx)
	if err != nil {
		return 0, classify(ctx, err, "postgres: read schema version")
	}
	return v, nil
}

// Sandboxes returns the sandbox records.
func (s *Store) Sandboxes() store.Sandboxes { return s.sandboxes }

// Templates returns the template repository.
func (s *Store) Templates() store.Templates { return s.templates }

// Quotas returns the per-owner quota repository.
func (s *Store) Quotas() store.Quotas { return s.quotas }

// Ping checks the server answers a query on a pooled connection.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return classify(ctx, err, "database unavailable")
	}
	return nil
}

// Close closes the database/sql view, then the pool and every connection
// in it. It is safe to call more than once.
func (s *Store) Close() error {
	err := s.db.Close()
	s.pool.Close()
	if err != nil {
		return errs.Wrap(errs.Internal, err, "postgres: close")
	}
	return nil
}

// tx runs fn in a read-committed transaction; fn's error rolls back and is
// returned unchanged.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(ctx, err, "database unavailable")
	}
	// Rollback after Commit is a no-op; it also runs if fn panics. It gets
	// its own context: a cancelled ctx must not leave the transaction open.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(ctx, err, "database commit failed")
	}
	return nil
}

// execOne runs one write statement; a statement that touches no row is
// NotFound.
func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return classify(ctx, err, "%s", what)
	}
	if tag.RowsAffected() == 0 {
		return errs.New(errs.NotFound, "%s: not found", what)
	}
	return nil
}

var _ store.Store = (*Store)(nil)
