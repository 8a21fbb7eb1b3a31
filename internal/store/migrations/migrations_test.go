package migrations_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"

	"github.com/stacyvm/stacyvm/internal/store/migrations"
)

// Every migration must go down as cleanly as it goes up, so a failed
// upgrade can be rolled back: up, all the way down, up again.
func TestSQLite_UpDownUp(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations.SQLite(),
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
