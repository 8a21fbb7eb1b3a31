package e2e

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestKillMidSpawnThenReconcile kills the server with SIGKILL while spawns
// are in flight, restarts it on the same data dir, and checks that store and
// Docker agree: every listed sandbox runs and answers, every container
// belongs to a listed sandbox, nothing is orphaned.
func TestKillMidSpawnThenReconcile(t *testing.T) {
	s := startServer(t, "")
	survivor := s.spawn(map[string]any{"ttl": "10m"})

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The server dies under these calls; errors are expected.
			req, _ := newJSONRequest("POST", s.url+"/sandboxes", `{"ttl":"10m"}`)
			if resp, err := httpClientNoRetry().Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(250 * time.Millisecond) // containers are being created now
	s.kill()
	wg.Wait()
	time.Sleep(2 * time.Second) // let in-flight engine work settle

	s.start()
	var list []sandboxJSON
	if code, data := s.call("GET", "/sandboxes", nil, &list); code != 200 {
		t.Fatalf("list after restart: %d %s", code, data)
	}
	var listed []string
	foundSurvivor := false
	for _, sb := range list {
		if sb.State != "running" {
			t.Errorf("after reconcile sandbox %s is %s, want running (or gone)", sb.ID, sb.State)
			continue
		}
		if r := s.exec(sb.ID, "echo alive"); r.Stdout != "alive\n" {
			t.Errorf("sandbox %s does not answer: %+v", sb.ID, r)
		}
		listed = append(listed, "stacyvm-"+sb.ID)
		foundSurvivor = foundSurvivor || sb.ID == survivor.ID
	}
	if !foundSurvivor {
		t.Errorf("the sandbox created before the crash (%s) was lost", survivor.ID)
	}
	got := containers(t, s.dataDir)
	sort.Strings(got)
	sort.Strings(listed)
	if len(got) != len(listed) {
		t.Fatalf("containers %v, want exactly the listed sandboxes %v (no orphans)", got, listed)
	}
	for i := range got {
		if got[i] != listed[i] {
			t.Fatalf("containers %v, want %v", got, listed)
		}
	}
	t.Logf("after the crash: %d sandboxes running, all reachable; no orphans", len(list))
}

// dockerProxy forwards a unix socket to the real engine and can be cut, to
// play a Docker daemon that goes away mid-operation and comes back.
type dockerProxy struct {
	path string
	mu   sync.Mutex
	ln   net.Listener
	conn map[net.Conn]bool
}

func newDockerProxy(t *testing.T) *dockerProxy {
	dir, err := os.MkdirTemp("", "dpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &dockerProxy{path: filepath.Join(dir, "docker.sock"), conn: map[net.Conn]bool{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *dockerProxy) up(t *testing.T) {
	os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conn[c], p.conn[u] = true, true
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

// down closes the listener and every forwarded connection.
func (p *dockerProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conn {
		c.Close()
		delete(p.conn, c)
	}
}

// TestDockerDaemonDown: with the engine unreachable, spawn and destroy answer
// 503 UNAVAILABLE quickly, the sandbox's state stays as it was, and all works
// again when the engine returns.
func TestDockerDaemonDown(t *testing.T) {
	px := newDockerProxy(t)
	s := startServer(t, "", "STACYVM_PROVIDERS_DOCKER_HOST=unix://"+px.path,
		"STACYVM_DEFAULTS_REAP_INTERVAL=200ms", "STACYVM_DEFAULTS_RECONCILE_INTERVAL=1s")
	sb := s.spawn(map[string]any{})

	px.down()
	start := time.Now()
	code, data := s.call("POST", "/sandboxes", map[string]any{}, nil)
	wantError(t, "spawn with the engine down", code, data, 503, "UNAVAILABLE")
	code, data = s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil)
	wantError(t, "destroy with the engine down", code, data, 503, "UNAVAILABLE")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("calls with the engine down took %s; want a fast 503, not a hang", took)
	}
	var got sandboxJSON
	if code, _ := s.call("GET", "/sandboxes/"+sb.ID, nil, &got); code != 200 || got.State != "running" {
		t.Errorf("after a failed destroy: %d state %q, want the sandbox still running", code, got.State)
	}
	var list []sandboxJSON
	s.call("GET", "/sandboxes", nil, &list)
	if len(list) != 1 {
		t.Errorf("after a failed spawn the list has %d sandboxes, want 1 (nothing half-made)", len(list))
	}

	px.up(t)
	if code, data := s.call("DELETE", "/sandboxes/"+sb.ID, nil, nil); code != 200 {
		t.Fatalf("destroy after the engine returned: %d %s", code, data)
	}
	sb2 := s.spawn(map[string]any{})
	if r := s.exec(sb2.ID, "echo back"); r.Stdout != "back\n" {
		t.Fatalf("exec after recovery: %+v", r)
	}

	// The engine goes away in the middle of spawns: they fail with 503, and
	// whatever the engine had already made is cleaned up once it returns.
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = s.call("POST", "/sandboxes", map[string]any{"image": "stacyvm/python"}, nil)
		}()
	}
	time.Sleep(150 * time.Millisecond)
	px.down()
	wg.Wait()
	for i, c := range codes {
		if c != 201 && c != 503 {
			t.Errorf("spawn %d during engine loss: status %d, want 201 or 503", i, c)
		}
	}
	px.up(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var live []sandboxJSON
		s.call("GET", "/sandboxes", nil, &live)
		want := map[string]bool{}
		for _, l := range live {
			want["stacyvm-"+l.ID] = true
		}
		got := containers(t, s.dataDir)
		extra := 0
		for _, c := range got {
			if !want[c] {
				extra++
			}
		}
		if extra == 0 && len(got) == len(want) {
			t.Logf("after the engine returned: %d sandboxes, no orphans (spawn statuses %v)", len(live), codes)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers %v do not match live sandboxes %v 20 s after the engine returned", got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
