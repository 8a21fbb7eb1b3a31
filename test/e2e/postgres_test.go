package e2e

import (
	"testing"

	"github.com/stacyvm/stacyvm/internal/store/postgres/pgtest"
)

// TestPostgres_ServerRunsOnPostgres: `stacyvm serve` with database.driver
// postgres (a real PostgreSQL, throwaway or STACYVM_TEST_POSTGRES_DSN)
// spawns and runs a Docker sandbox, keeps its record across a restart
// (the restarted server reconciles it as running and execs in it again),
// stores templates and audit there, and destroys the sandbox. Under CI=true a
// missing Postgres fails the test (pgtest).
func TestPostgres_ServerRunsOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.Database(t)
	s := startServer(t, "",
		"STACYVM_DATABASE_DRIVER=postgres",
		"STACYVM_DATABASE_DSN="+dsn)

	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "metadata": map[string]string{"store": "pg"}})
	if r := s.exec(sb.ID, "echo on-postgres"); r.ExitCode != 0 || r.Stdout != "on-postgres\n" {
		t.Fatalf("exec on a postgres-backed server: %+v", r)
	}
	code, data := s.call("POST", "/templates", map[string]any{"name": "pg-tpl", "image": "stacyvm/busybox"}, nil)
	if code != 201 {
		t.Fatalf("create template: %d %s", code, data)
	}

	s.stop()
	s.start() // same DSN: the records are in Postgres, not the data dir

	var got sandboxJSON
	if code, data := s.call("GET", "/sandboxes/"+sb.ID, nil, &got); code != 200 || got.State != "running" {
		t.Fatalf("after restart: GET sandbox %d %s, want 200 running", code, data)
	}
	if r := s.exec(sb.ID, "echo again"); r.ExitCode != 0 || r.Stdout != "again\n" {
		t.Fatalf("exec after restart: %+v", r)
	}
	var list []sandboxJSON
	if code, data := s.call("GET", "/sandboxes?label=store=pg", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("list by label after restart: %d %s, want exactly the one sandbox", code, data)
	}
	if code, data := s.call("GET", "/templates/pg-tpl", nil, nil); code != 200 {
		t.Fatalf("template after restart: %d %s", code, data)
	}
	if code, data := s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil); code != 200 && code != 204 {
		t.Fatalf("destroy: %d %s", code, data)
	}
	if code, _ := s.call("GET", "/sandboxes/"+sb.ID, nil, nil); code != 404 {
		t.Fatalf("after destroy: GET %d, want 404", code)
	}
}
