package sqlite_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/migrations"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
	"github.com/stacyvm/stacyvm/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open opens path and closes it when the test ends.
func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "stacyvm.db"))
	})
}

func TestOpen_PragmasApplyToEveryPooledConnection(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p.db"))
	ctx := t.Context()
	// Hold several connections at once so the pool must open distinct ones;
	// a pragma set only on the first connection would show up here.
	const n = 4
	var wg sync.WaitGroup
	results := make(chan string, n)
	held := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			c, err := s.DB().Conn(ctx)
			if err != nil {
				results <- fmt.Sprintf("conn %d: %v", i, err)
				return
			}
			defer c.Close()
			<-held // keep it checked out until every goroutine has one
			var mode string
			var busy, fk, sync int
			for _, p := range []struct {
				q   string
				dst any
			}{{"PRAGMA journal_mode", &mode}, {"PRAGMA busy_timeout", &busy}, {"PRAGMA foreign_keys", &fk}, {"PRAGMA synchronous", &sync}} {
				if err := c.QueryRowContext(ctx, p.q).Scan(p.dst); err != nil {
					results <- fmt.Sprintf("conn %d: %s: %v", i, p.q, err)
					return
				}
			}
			results <- fmt.Sprintf("journal_mode=%s busy_timeout=%d foreign_keys=%d synchronous=%d", mode, busy, fk, sync)
		})
	}
	// Wait until all n connections are open (checked out) before releasing.
	for s.DB().Stats().InUse < n {
		select {
		case <-ctx.Done():
			t.Fatal("connections never all checked out")
		case <-time.After(time.Millisecond):
		}
	}
	if got := s.DB().Stats().OpenConnections; got < n {
		t.Fatalf("open connections = %d, want at least %d distinct", got, n)
	}
	close(held)
	wg.Wait()
	close(results)
	const want = "journal_mode=wal busy_timeout=5000 foreign_keys=1 synchronous=1"
	for got := range results {
		if got != want {
			t.Errorf("pooled connection: got %q, want %q", got, want)
		}
	}
}

// latestMigration is the highest version among the embedded migration files.
func latestMigration(t *testing.T) int64 {
	t.Helper()
	names, err := fs.Glob(migrations.SQLite(), "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v, %d files", err, len(names))
	}
	var latest int64
	for _, n := range names {
		v, err := strconv.ParseInt(strings.SplitN(n, "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s has no numeric version: %v", n, err)
		}
		latest = max(latest, v)
	}
	return latest
}

func TestOpen_MigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "m.db") // parent dirs created by Open
	ctx := t.Context()
	first, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	v1, err := first.SchemaVersion(ctx)
	if err != nil || v1 != latestMigration(t) {
		t.Fatalf("SchemaVersion after first Open = %d, %v; want %d", v1, err, latestMigration(t))
	}
	if err := first.Sandboxes().Create(ctx, &store.Sandbox{ID: "keep", State: "running"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := open(t, path)
	if v2, err := second.SchemaVersion(ctx); err != nil || v2 != v1 {
		t.Fatalf("SchemaVersion after reopen = %d, %v; want %d", v2, err, v1)
	}
	if sb, err := second.Sandboxes().Get(ctx, "keep"); err != nil || sb.State != "running" {
		t.Fatalf("Get after reopen = %+v, %v; want the record created before", sb, err)
	}
}

func TestOpen_ConcurrentOpensOfANewFileBothMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), path)
			if err == nil {
				err = s.Close()
			}
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Errorf("concurrent Open of a new file: %v", err)
		}
	}
}

func TestOpen_NotSQLiteFileIsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), path)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a text file: got nil error, want Invalid")
	}
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(errs.Message(err), "not a SQLite database") {
		t.Fatalf("Open of a text file: got %v (class %v), want Invalid saying %q", err, errs.ClassOf(err), "not a SQLite database")
	}
}

func TestOpen_PathWithURISpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	path := filepath.Join(dir, "x.db")
	open(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at the exact path %q: %v", path, err)
	}
}

func TestClosedStore_PingFailsWithoutPanic(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close: got nil, want an error")
	}
}

// Two Stores on one file stand in for two processes: their writer slots are
// independent, so only SQLite's lock and busy_timeout keep them apart.
func TestTwoStores_ConcurrentWritersDoNotFailBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := []*sqlite.Store{open(t, path), open(t, path)}
	ctx := t.Context()
	if err := stores[0].Sandboxes().Create(ctx, &store.Sandbox{ID: "counter", State: "running"}); err != nil {
		t.Fatal(err)
	}
	const perStore, writers = 25, 4
	var wg sync.WaitGroup
	errc := make(chan error, len(stores)*writers*perStore*2)
	for si, s := range stores {
		for w := range writers {
			wg.Go(func() {
				for i := range perStore {
					id := fmt.Sprintf("s%d-w%d-%02d", si, w, i)
					errc <- s.Sandboxes().Create(ctx, &store.Sandbox{ID: id, State: "running"})
					_, err := s.Sandboxes().Update(ctx, "counter", func(sb *store.Sandbox) error {
						n, _ := strconv.Atoi(sb.Metadata["n"])
						sb.Metadata["n"] = strconv.Itoa(n + 1)
						return nil
					})
					errc <- err
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatalf("write under contention from two stores: %v (class %v)", err, errs.ClassOf(err))
		}
	}
	total := len(stores) * writers * perStore
	if n, err := stores[1].Sandboxes().Count(ctx, store.SandboxFilter{}); err != nil || n != total+1 {
		t.Errorf("Count = %d, %v; want %d", n, err, total+1)
	}
	sb, err := stores[0].Sandboxes().Get(ctx, "counter")
	if err != nil || sb.Metadata["n"] != strconv.Itoa(total) {
		t.Errorf("counter = %v, %v; want %d (no lost update across stores)", sb, err, total)
	}
}
