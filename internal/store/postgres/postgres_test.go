package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/postgres"
	"github.com/stacyvm/stacyvm/internal/store/postgres/pgtest"
	"github.com/stacyvm/stacyvm/internal/store/storetest"
)

// server is this test binary's Postgres, started by the first test that
// needs a database and stopped by TestMain.
var server = pgtest.New()

func TestMain(m *testing.M) {
	code := m.Run()
	if err := server.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stop postgres:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens dsn and closes it when the test ends.
func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open(%s): %v", postgres.Redact(dsn), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, server.Database(t)) })
}

func TestGovernanceContract(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.Governance { return open(t, server.Database(t)).Governance() })
}

// Several control planes start at once against one new database: the
// advisory lock lets exactly one apply the migrations, and every one ends
// up at the latest version without an error.
func TestOpen_ConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := server.Database(t)
	const n = 4
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
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
			t.Errorf("concurrent Open: %v", err)
		}
	}
	ms, err := postgres.Migrations(t.Context(), dsn)
	known := postgres.KnownMigrations()
	if err != nil || ms.Current != known[len(known)-1] || len(ms.Pending) != 0 || len(ms.Applied) != len(known) {
		t.Fatalf("Migrations after concurrent opens = %+v, %v; want every one of %v applied", ms, err, known)
	}
}

func TestOpen_MigrationsAreIdempotent(t *testing.T) {
	dsn := server.Database(t)
	ctx := t.Context()
	first, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := first.SchemaVersion(ctx)
	if known := postgres.KnownMigrations(); err != nil || v1 != known[len(known)-1] {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v1, err, known[len(known)-1])
	}
	if err := first.Sandboxes().Create(ctx, &store.Sandbox{ID: "keep", State: "running"}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := open(t, dsn)
	if v2, err := second.SchemaVersion(ctx); err != nil || v2 != v1 {
		t.Fatalf("SchemaVersion after reopen = %d, %v; want %d", v2, err, v1)
	}
	if sb, err := second.Sandboxes().Get(ctx, "keep"); err != nil || sb.State != "running" {
		t.Fatalf("Get after reopen = %+v, %v", sb, err)
	}
}

func TestOpen_Errors(t *testing.T) {
	dsn := server.Database(t)
	missing, err := postgres.WithDatabase(dsn, "stacyvm_no_such_database")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name, dsn string
		want      errs.Class
	}{
		{"empty", "", errs.Invalid},
		{"unparsable", "host='unterminated password=hunter2", errs.Invalid},
		{"missing database", missing, errs.Unavailable},
		{"nothing listening", "host=127.0.0.1 port=1 user=x password=hunter2 dbname=x connect_timeout=5", errs.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, c.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if got := errs.ClassOf(err); got != c.want {
				t.Fatalf("Open: %v (class %v), want class %v", err, got, c.want)
			}
			if msg := err.Error(); strings.Contains(msg, "hunter2") {
				t.Fatalf("error leaks the password: %s", msg)
			}
		})
	}
}

// A server that goes away answers Unavailable, not Internal: the API maps
// that to 503 and clients retry.
func TestStore_ClosedPoolIsUnavailable(t *testing.T) {
	s, err := postgres.Open(t.Context(), server.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Ping after Close = %v (class %v), want Unavailable", err, errs.ClassOf(err))
	}
	if _, err := s.Sandboxes().Get(t.Context(), "x"); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Get after Close = %v (class %v), want Unavailable", err, errs.ClassOf(err))
	}
}

// Two Stores on one database stand in for two control planes: only the
// row lock (SELECT ... FOR UPDATE) keeps their updates from losing each
// other's writes.
func TestTwoStores_ConcurrentUpdatesLoseNothing(t *testing.T) {
	dsn := server.Database(t)
	stores := []*postgres.Store{open(t, dsn), open(t, dsn)}
	ctx := t.Context()
	if err := stores[0].Sandboxes().Create(ctx, &store.Sandbox{ID: "counter", State: "running"}); err != nil {
		t.Fatal(err)
	}
	const perStore, writers = 10, 4
	var wg sync.WaitGroup
	errc := make(chan error, len(stores)*writers*perStore)
	for _, s := range stores {
		for range writers {
			wg.Go(func() {
				for range perStore {
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
			t.Fatalf("Update under contention: %v", err)
		}
	}
	total := len(stores) * writers * perStore
	if sb, err := stores[1].Sandboxes().Get(ctx, "counter"); err != nil || sb.Metadata["n"] != strconv.Itoa(total) {
		t.Fatalf("counter = %v, %v; want %d", sb, err, total)
	}
}

// Audit sequence numbers follow commit order, so paging with AfterSeq
// while others append never skips an event.
func TestAudit_ConcurrentAppendsPageWithoutGaps(t *testing.T) {
	s := open(t, server.Database(t))
	a := s.Governance().Audit()
	ctx := t.Context()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := a.Append(ctx, &store.AuditEvent{Kind: store.AuditOp, Action: "a" + strconv.Itoa(i)}); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	var seen []int64
	var after int64
	for deadline := time.Now().Add(30 * time.Second); len(seen) < n && time.Now().Before(deadline); {
		page, err := a.List(ctx, store.AuditFilter{AfterSeq: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.Seq)
			after = e.Seq
		}
	}
	wg.Wait()
	rest, err := a.List(ctx, store.AuditFilter{AfterSeq: after})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rest {
		seen = append(seen, e.Seq)
	}
	if len(seen) != n {
		t.Fatalf("paged %d events, want %d: %v", len(seen), n, seen)
	}
}

func TestSandboxes_InvalidValuesAreInvalid(t *testing.T) {
	s := open(t, server.Database(t)).Sandboxes()
	for name, sb := range map[string]*store.Sandbox{
		"NUL byte in text": {ID: "sb-nul", State: "run\x00ning"},
		"year 10000":       {ID: "sb-y", State: "running", ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Create(t.Context(), sb); !errs.Is(err, errs.Invalid) {
				t.Fatalf("Create = %v (class %v), want Invalid", err, errs.ClassOf(err))
			}
		})
	}
}
