package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQuickstart is the README's walk-through: spawn stacyvm/python, run
// python, write and read a file, destroy fast, leave nothing behind.
func TestQuickstart(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/python", "ttl": "10m"})
	if sb.State != "running" || !strings.HasPrefix(sb.ID, "sb-") || len(sb.ID) < 15 {
		t.Fatalf("spawned %+v, want a running sb- id with at least 12 hex digits", sb)
	}
	if r := s.exec(sb.ID, "python3 -c 'print(40+2)'"); r.Stdout != "42\n" || r.ExitCode != 0 {
		t.Fatalf("python: got %+v, want stdout 42", r)
	}
	code, data := s.call("POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/workspace/hello.txt", "content": "hi from the API\n"}, nil)
	if code != 200 || !strings.Contains(string(data), `"written"`) {
		t.Fatalf("write: %d %s", code, data)
	}
	code, data = s.call("GET", "/sandboxes/"+sb.ID+"/files?path=/workspace/hello.txt", nil, nil)
	if code != 200 || string(data) != "hi from the API\n" {
		t.Fatalf("read: %d %q", code, data)
	}
	if r := s.exec(sb.ID, "cat hello.txt"); r.Stdout != "hi from the API\n" {
		t.Fatalf("exec in /workspace sees the file: got %+v", r)
	}
	start := time.Now()
	code, data = s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil)
	took := time.Since(start)
	if code != 200 || !strings.Contains(string(data), `"destroyed"`) {
		t.Fatalf("destroy: %d %s", code, data)
	}
	t.Logf("destroy took %s", took)
	if took > time.Second {
		t.Errorf("destroy took %s, want well under a second", took)
	}
	code, data = s.call("GET", "/sandboxes/"+sb.ID, nil, nil)
	wantError(t, "get after destroy", code, data, 404, "NOT_FOUND")
	code, data = s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil)
	wantError(t, "destroy twice", code, data, 404, "NOT_FOUND")
	if c := containers(t, s.dataDir); len(c) != 0 {
		t.Errorf("containers left after destroy: %v", c)
	}
}

// TestContract runs the shared black-box wire-contract checker when it is
// beside the repository (it is in CI).
func TestContract(t *testing.T) {
	script, _ := filepath.Abs("../../../shared/tools/v1-contract.py")
	if _, err := os.Stat(script); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI runs the wire-contract checker, but %s is missing", script)
		}
		t.Skip("shared/tools/v1-contract.py not beside the repository")
	}
	s := startServer(t, "")
	out, err := exec.Command("python3", script, strings.TrimSuffix(s.url, "/api/v1"), "--image", "stacyvm/python").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("v1-contract.py failed: %v", err)
	}
}

// TestParallelSpawns spawns concurrently and checks every sandbox works.
func TestParallelSpawns(t *testing.T) {
	s := startServer(t, "")
	const n = 6
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sb sandboxJSON
			code, data := s.call("POST", "/sandboxes", map[string]any{"ttl": "5m"}, &sb)
			if code != 201 {
				errs[i] = string(data)
				return
			}
			ids[i] = sb.ID
		}()
	}
	wg.Wait()
	for i := range n {
		if ids[i] == "" {
			t.Fatalf("spawn %d failed: %s", i, errs[i])
		}
		if r := s.exec(ids[i], "echo $((6*7))"); r.Stdout != "42\n" {
			t.Errorf("sandbox %s: %+v", ids[i], r)
		}
	}
	var list []sandboxJSON
	if code, data := s.call("GET", "/sandboxes", nil, &list); code != 200 || len(list) != n {
		t.Fatalf("list: %d, %d sandboxes (%s), want %d", code, len(list), data, n)
	}
	var pruned map[string]int
	s.call("DELETE", "/sandboxes", nil, &pruned) // none expired
	if pruned["pruned"] != 0 {
		t.Errorf("prune removed %d unexpired sandboxes", pruned["pruned"])
	}
}

// TestExpiryReaper: a sandbox past its ttl is destroyed by the reaper.
func TestExpiryReaper(t *testing.T) {
	s := startServer(t, "", "STACYVM_DEFAULTS_REAP_INTERVAL=200ms")
	sb := s.spawn(map[string]any{"ttl": "1s"})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		code, _ := s.call("GET", "/sandboxes/"+sb.ID, nil, nil)
		if code == 404 {
			if c := containers(t, s.dataDir); len(c) != 0 {
				t.Fatalf("reaped sandbox left containers: %v", c)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("expired sandbox was not reaped within 15 s")
}

// TestExtend: extend moves expires_at and is capped by max_ttl (429).
func TestExtend(t *testing.T) {
	s := startServer(t, "", "STACYVM_DEFAULTS_MAX_TTL=2h")
	sb := s.spawn(map[string]any{"ttl": "1m"})
	var ext sandboxJSON
	if code, data := s.call("POST", "/sandboxes/"+sb.ID+"/extend", map[string]any{"ttl": "1h"}, &ext); code != 200 || ext.ExpiresAt <= sb.ExpiresAt {
		t.Fatalf("extend: %d %s", code, data)
	}
	code, data := s.call("POST", "/sandboxes/"+sb.ID+"/extend", map[string]any{"ttl": "3h"}, nil)
	wantError(t, "extend over max_ttl", code, data, 429, "RESOURCE_LIMIT")
}

// TestStreamDisconnectKillsCommand: a client that drops an NDJSON exec
// stream kills the command inside the sandbox.
func TestStreamDisconnectKillsCommand(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"command":"echo started; exec sleep 377","stream":true}`
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/sandboxes/"+sb.ID+"/exec", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "started") {
		t.Fatalf("first stream line: %q %v", line, err)
	}
	if r := s.exec(sb.ID, "ps | grep -c '[s]leep 377'"); strings.TrimSpace(r.Stdout) != "1" {
		t.Fatalf("command not running before disconnect: %+v", r)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := s.exec(sb.ID, "ps | grep -c '[s]leep 377'"); strings.TrimSpace(r.Stdout) == "0" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("command still running 5 s after the client disconnected")
}

// TestLogsAndStats: logs is a JSON list, stats reports real numbers.
func TestLogsAndStats(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"memory_mb": 128})
	var lines []string
	if code, data := s.call("GET", "/sandboxes/"+sb.ID+"/logs?lines=10", nil, &lines); code != 200 {
		t.Fatalf("logs: %d %s", code, data)
	}
	var st map[string]any
	if code, data := s.call("GET", "/sandboxes/"+sb.ID+"/stats", nil, &st); code != 200 || st["supported"] != true {
		t.Fatalf("stats: %d %s", code, data)
	}
	if lim, _ := st["mem_limit_bytes"].(float64); lim != 128<<20 {
		t.Errorf("mem_limit_bytes = %v, want %d", st["mem_limit_bytes"], 128<<20)
	}
}

// TestCLI drives the stacyvm CLI against the server.
func TestCLI(t *testing.T) {
	s := startServer(t, "")
	base := strings.TrimSuffix(s.url, "/api/v1")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binPath, append([]string{"--server", base}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run("spawn", "--image", "stacyvm/busybox", "--output", "json")
	if code != 0 {
		t.Fatalf("spawn: %d %s", code, out)
	}
	var sb sandboxJSON
	if err := json.Unmarshal([]byte(out), &sb); err != nil {
		t.Fatalf("spawn --output json: %q: %v", out, err)
	}
	if out, code := run("exec", sb.ID, "--", "sh", "-c", "echo out; exit 7"); code != 7 || !strings.Contains(out, "out") {
		t.Errorf("exec exit code passthrough: got %d %q, want 7", code, out)
	}
	if out, code := run("list"); code != 0 || !strings.Contains(out, sb.ID) {
		t.Errorf("list: %d %q", code, out)
	}
	if out, code := run("kill", sb.ID); code != 0 {
		t.Errorf("kill: %d %q", code, out)
	}
	if out, code := run("get", sb.ID); code == 0 || !strings.Contains(out, "NOT_FOUND") {
		t.Errorf("get after kill: %d %q, want a NOT_FOUND error line", code, out)
	}
}
