package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// cli runs the stacyvm binary with the server's environment.
func (s *server) cli(args ...string) (string, error) {
	cmd := exec.Command(binPath, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOps_BackupEventsMetricsUnderLoad drives a real server (Docker
// provider) with concurrent spawn/exec/destroy while it takes online
// backups with the CLI, follows /events and scrapes /metrics/prometheus.
func TestOps_BackupEventsMetricsUnderLoad(t *testing.T) {
	s := startServer(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Follow the event stream from the start.
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evMu sync.Mutex
	types := map[string]int{}
	lastID := ""
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			evMu.Lock()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				types[v]++
			}
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				lastID = v
			}
			evMu.Unlock()
		}
	}()

	var spawned atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var sb sandboxJSON
				code, data := s.call("POST", "/sandboxes", map[string]any{"ttl": "5m"}, &sb)
				if code != 201 {
					t.Errorf("spawn: %d %s", code, data)
					return
				}
				spawned.Add(1)
				s.exec(sb.ID, "echo hi")
				if code, data := s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil); code != 200 {
					t.Errorf("destroy: %d %s", code, data)
					return
				}
			}
		}()
	}
	// Online backups while the load runs.
	var rows []int
	for i := range 3 {
		time.Sleep(700 * time.Millisecond)
		out := filepath.Join(t.TempDir(), fmt.Sprintf("b%d.db", i))
		if o, err := s.cli("db", "backup", out); err != nil || !strings.Contains(o, "integrity ok") {
			t.Fatalf("backup %d under load: %v\n%s", i, err, o)
		}
		db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var check string
		db.QueryRow("SELECT count(*) FROM sandboxes").Scan(&n)
		db.QueryRow("PRAGMA integrity_check").Scan(&check)
		db.Close()
		if check != "ok" {
			t.Errorf("backup %d integrity_check = %q", i, check)
		}
		rows = append(rows, n)
	}
	close(stop)
	wg.Wait()
	t.Logf("spawned %d sandboxes under load; backup row counts %v", spawned.Load(), rows)
	if spawned.Load() < 3 || rows[len(rows)-1] == 0 {
		t.Fatalf("no load: spawned %d, rows %v", spawned.Load(), rows)
	}

	// Events: every lifecycle step of the load was streamed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		evMu.Lock()
		done := types["sandbox.destroyed"] >= int(spawned.Load())
		evMu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	evMu.Lock()
	for _, typ := range []string{"sandbox.created", "sandbox.running", "exec.started", "exec.finished", "sandbox.destroyed"} {
		if types[typ] < int(spawned.Load()) {
			t.Errorf("event %s seen %d times, want >= %d (all: %v)", typ, types[typ], spawned.Load(), types)
		}
	}
	resumeFrom := lastID
	evMu.Unlock()

	// Resume: nothing new after the last id; then one spawn arrives.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	req2, _ := http.NewRequestWithContext(rctx, "GET", s.url+"/events", nil)
	req2.Header.Set("Last-Event-ID", resumeFrom)
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	sb := s.spawn(map[string]any{})
	sc := bufio.NewScanner(resp2.Body)
	var first string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			first = v
			break
		}
	}
	if first != "sandbox.created" {
		t.Errorf("first event after resuming = %q, want sandbox.created", first)
	}
	s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil)

	// Metrics.
	code, body := s.call("GET", "/metrics/prometheus", nil, nil)
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	m := string(body)
	for _, want := range []string{
		`stacyvm_sandbox_spawn_duration_seconds_count{outcome="ok",provider="docker",source="cold"}`,
		`stacyvm_exec_duration_seconds_count{outcome="ok",provider="docker"}`,
		`stacyvm_http_request_duration_seconds_count{code="201",method="POST",route="/api/v1/sandboxes"}`,
		`stacyvm_http_request_duration_seconds_count{code="200",method="DELETE",route="/api/v1/sandboxes/{id}"}`,
		`stacyvm_sandboxes{provider="docker",state="destroyed"}`,
		`stacyvm_provider_healthy{provider="docker"} 1`,
		`stacyvm_store_operation_duration_seconds_count{op="sandbox_update",outcome="ok"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "sb-") {
		t.Error("a sandbox id leaked into metric labels")
	}

	// Doctor sees the running server on its port and a healthy database.
	if out, err := s.cli("doctor"); err != nil || !strings.Contains(out, "in use by a running stacyvm server") {
		t.Errorf("doctor next to a running server: %v\n%s", err, out)
	}
	// Restore refuses while the server runs.
	bk := filepath.Join(t.TempDir(), "r.db")
	if out, err := s.cli("db", "backup", bk); err != nil {
		t.Fatal(out)
	}
	if out, err := s.cli("db", "restore", bk, "--yes"); err == nil || !strings.Contains(out, "stop it first") {
		t.Errorf("restore with the server running: %v %s", err, out)
	}
	// Diagnostics (single-user mode: every local caller is admin).
	if code, body := s.call("GET", "/diagnostics", nil, nil); code != 200 || !strings.Contains(string(body), `"schema_version"`) {
		t.Errorf("diagnostics: %d %s", code, body)
	}
	// Support bundle next to the running server: diagnostics come from it.
	logFile := filepath.Join(t.TempDir(), "server.log")
	os.WriteFile(logFile, []byte(s.logBuf.String()), 0o600)
	bundle := filepath.Join(t.TempDir(), "support.tar.gz")
	if out, err := s.cli("support", "bundle", bundle, "--log-file", logFile); err != nil ||
		!strings.Contains(out, "diagnostics.json: from the running server") {
		t.Errorf("support bundle: %v\n%s", err, out)
	}
}
