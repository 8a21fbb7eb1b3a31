package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readyJSON is GET /ready's body.
type readyJSON struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

func getReady(t *testing.T, s *server) (int, readyJSON) {
	t.Helper()
	resp, err := http.Get(s.url + "/ready")
	if err != nil {
		t.Fatalf("GET /ready: %v", err)
	}
	defer resp.Body.Close()
	var r readyJSON
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /ready: decode: %v", err)
	}
	return resp.StatusCode, r
}

// waitReady polls /ready until it answers want (the provider health is
// cached for a few seconds), failing after timeout.
func waitReady(t *testing.T, s *server, want int, timeout time.Duration) readyJSON {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, r := getReady(t, s)
		if code == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d %+v after %s, want %d", code, r, timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReady_FollowsTheDefaultProvidersEngine: /ready is 200 on a healthy
// server, 503 naming the unhealthy default provider once its engine is cut,
// and 200 again when the engine returns; /live stays 200 throughout (a
// load balancer drains the instance, an orchestrator does not restart it).
func TestReady_FollowsTheDefaultProvidersEngine(t *testing.T) {
	px := newDockerProxy(t)
	s := startServer(t, "", "STACYVM_PROVIDERS_DOCKER_HOST=unix://"+px.path)

	if r := waitReady(t, s, 200, 10*time.Second); r.Status != "ready" || r.Error != "" {
		t.Fatalf("healthy server: /ready %+v, want status ready and no error", r)
	}

	px.down()
	r := waitReady(t, s, 503, 20*time.Second)
	if r.Status != "not_ready" || !strings.Contains(r.Error, "default provider docker is unhealthy") {
		t.Errorf("engine cut: /ready %+v, want not_ready naming the default provider docker", r)
	}
	if code, _ := s.call("GET", "/live", nil, nil); code != 200 {
		t.Errorf("engine cut: /live %d, want 200 (the process still serves)", code)
	}

	px.up(t)
	if r := waitReady(t, s, 200, 20*time.Second); r.Status != "ready" {
		t.Errorf("engine back: /ready %+v, want ready", r)
	}
}

// TestReady_UnreachableEngineAtStart: a server whose default provider's
// engine socket does not exist still starts and is live, but never ready,
// and says why.
func TestReady_UnreachableEngineAtStart(t *testing.T) {
	dir, err := os.MkdirTemp("", "nodock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := startServer(t, "", "STACYVM_PROVIDERS_DOCKER_HOST=unix://"+filepath.Join(dir, "missing.sock"))

	code, r := getReady(t, s)
	if code != 503 || r.Status != "not_ready" {
		t.Fatalf("/ready %d %+v, want 503 not_ready", code, r)
	}
	if !strings.Contains(r.Error, "default provider docker is unhealthy") {
		t.Errorf("/ready error %q, want it to name the unhealthy default provider", r.Error)
	}
	if code, _ := s.call("GET", "/live", nil, nil); code != 200 {
		t.Errorf("/live %d, want 200", code)
	}
}
