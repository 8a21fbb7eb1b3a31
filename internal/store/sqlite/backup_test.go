package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

func insertN(t *testing.T, st *sqlite.Store, prefix string, n int) {
	t.Helper()
	now := time.Now().UTC()
	for i := range n {
		sb := &store.Sandbox{ID: fmt.Sprintf("sb-%s%08x", prefix, i), State: "running", Provider: "docker", Image: "img",
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.Sandboxes().Create(context.Background(), sb); err != nil {
			t.Fatal(err)
		}
	}
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sandboxes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackup_ConsistentUnderConcurrentWrites backs up a database while four
// writers insert and update rows through the server's own store; every
// backup must pass integrity_check and hold at least the rows committed
// before it started.
func TestBackup_ConsistentUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "live.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	insertN(t, st, "aa", 500)

	var committed atomic.Int64
	committed.Store(500)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now().UTC()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("sb-%02x%010x", 0xb0+w, i)
				if err := st.Sandboxes().Create(ctx, &store.Sandbox{ID: id, State: "creating", Provider: "docker",
					Image: "img", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Error(err)
					return
				}
				committed.Add(1)
				if _, err := st.Sandboxes().Update(ctx, id, func(sb *store.Sandbox) error { sb.State = "running"; return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var sizes []int
	for i := range 5 {
		before := int(committed.Load())
		out := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		info, err := sqlite.Backup(ctx, dbPath, out)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("backup %d: %v", i, err)
		}
		probs, err := sqlite.IntegrityCheck(ctx, out)
		if err != nil || len(probs) > 0 {
			t.Errorf("backup %d integrity: %v %v", i, err, probs)
		}
		n := countRows(t, out)
		if n < before {
			t.Errorf("backup %d has %d rows, but %d were committed before it started", i, n, before)
		}
		if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
			t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
		}
		if info.Schema != sqlite.KnownMigrations()[len(sqlite.KnownMigrations())-1] {
			t.Errorf("backup schema %d", info.Schema)
		}
		sizes = append(sizes, n)
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("rows per backup under write load: %v (final %d)", sizes, committed.Load())
	if sizes[len(sizes)-1] <= sizes[0] {
		t.Errorf("writers made no progress between backups: %v", sizes)
	}
	if _, err := sqlite.Backup(ctx, dbPath, filepath.Join(dir, "backup-0.db")); !errs.Is(err, errs.Conflict) {
		t.Errorf("backup over an existing file: %v, want Conflict", err)
	}
}

func TestRestore_SafetyCopyAndRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	st, err := sqlite.Open(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	insertN(t, st, "cc", 10)
	bk := filepath.Join(dir, "b.db")
	if _, err := sqlite.Backup(ctx, live, bk); err != nil {
		t.Fatal(err)
	}
	insertN(t, st, "dd", 5) // after the backup: gone after restore, kept in the safety copy
	st.Close()

	// A corrupt backup: a valid header with garbage pages.
	corrupt := filepath.Join(dir, "corrupt.db")
	b, _ := os.ReadFile(bk)
	for i := 4096; i < len(b); i += 7 {
		b[i] ^= 0x5a
	}
	os.WriteFile(corrupt, b, 0o600)
	notDB := filepath.Join(dir, "text.db")
	os.WriteFile(notDB, []byte("this is not a database, it is a text file of some length........"), 0o600)
	for _, bad := range []string{corrupt, notDB, filepath.Join(dir, "missing.db")} {
		if _, err := sqlite.Restore(ctx, bad, live, time.Now()); err == nil {
			t.Errorf("restore of %s succeeded", filepath.Base(bad))
		}
	}
	if n := countRows(t, live); n != 15 {
		t.Fatalf("a refused restore changed the database: %d rows, want 15", n)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	res, err := sqlite.Restore(ctx, bk, live, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := live + ".pre-restore-20261123T120000Z"; res.SafetyCopy != want {
		t.Errorf("safety copy %q, want %q", res.SafetyCopy, want)
	}
	if n := countRows(t, res.SafetyCopy); n != 15 {
		t.Errorf("safety copy has %d rows, want 15", n)
	}
	if n := countRows(t, live); n != 10 {
		t.Errorf("restored database has %d rows, want 10", n)
	}
	st2, err := sqlite.Open(ctx, live) // the server opens a restored file
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
}

// oldFixture creates a database at schema version 1 (only 00001 applied),
// as an older stacyvm left it.
func oldFixture(t *testing.T, path string) {
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
}

func TestMigrations_StateOfAnOlderDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	oldFixture(t, path)
	known := sqlite.KnownMigrations()
	if len(known) < 2 {
		t.Skip("only one migration exists; nothing is pending for an old database")
	}
	ms, err := sqlite.Migrations(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if ms.Current != 1 || len(ms.Pending) != len(known)-1 || ms.Latest != known[len(known)-1] {
		t.Fatalf("state = %+v, want current 1 and %d pending", ms, len(known)-1)
	}
	st, err := sqlite.Open(ctx, path) // migrates
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ms, _ = sqlite.Migrations(ctx, path)
	if len(ms.Pending) != 0 || ms.Current != known[len(known)-1] {
		t.Fatalf("after open: %+v", ms)
	}
}
