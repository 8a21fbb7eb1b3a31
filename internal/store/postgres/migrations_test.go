package postgres_test

import (
	"database/sql"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/stacyvm/stacyvm/internal/store/migrations"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// Every Postgres migration must go down as cleanly as it goes up, so a
// failed upgrade can be rolled back: up, all the way down, up again.
func TestMigrations_UpDownUp(t *testing.T) {
	db, err := sql.Open("pgx", server.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres(),
		goose.WithDisableGlobalRegistry(true), goose.WithLogger(goose.NopLogger()))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	ctx := t.Context()
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version
	for i, step := range []func() error{
		func() error { _, err := p.Up(ctx); return err },
		func() error { _, err := p.DownTo(ctx, 0); return err },
		func() error { _, err := p.Up(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != latest {
		t.Fatalf("version after up/down/up = %d, %v; want %d", v, err, latest)
	}
}

// Both dialects number the same schema steps alike.
func TestMigrations_SameVersionsAsSQLite(t *testing.T) {
	if d := cmp.Diff(sqlite.KnownMigrations(), postgres.KnownMigrations()); d != "" {
		t.Fatalf("migration versions (-sqlite +postgres):\n%s", d)
	}
}
