package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// serverStore is what the server needs of a store implementation; both
// sqlite.Store and postgres.Store are one.
type serverStore interface {
	store.Store
	Governance() store.Governance
	SchemaVersion(ctx context.Context) (int64, error)
}

// openStore opens the configured database and applies pending migrations.
// It also returns a description of the database that is safe to log (a
// Postgres DSN with its password redacted).
func openStore(ctx context.Context, cfg config.DatabaseConfig, log *slog.Logger) (serverStore, string, error) {
	switch cfg.Driver {
	case config.DriverPostgres:
		where := "postgres " + postgres.Redact(cfg.DSN)
		st, err := postgres.Open(ctx, cfg.DSN, postgres.WithLogger(log))
		if err != nil {
			return nil, where, fmt.Errorf("open database %s: %w", where, err)
		}
		return st, where, nil
	case config.DriverSQLite, "":
		st, err := sqlite.Open(ctx, cfg.Path, sqlite.WithLogger(log))
		if err != nil {
			return nil, cfg.Path, fmt.Errorf("open database %s: %w", cfg.Path, err)
		}
		return st, cfg.Path, nil
	}
	return nil, "", fmt.Errorf("database.driver %q: want sqlite or postgres", cfg.Driver)
}

var (
	_ serverStore = (*sqlite.Store)(nil)
	_ serverStore = (*postgres.Store)(nil)
)
