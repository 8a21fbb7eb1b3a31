package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// recObserver records the observer calls.
type recObserver struct {
	mu     sync.Mutex
	spawns []string
	execs  []string
}

func (o *recObserver) SpawnObserved(p, source, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spawns = append(o.spawns, p+"/"+source+"/"+outcome)
}

func (o *recObserver) ExecObserved(p, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.execs = append(o.execs, p+"/"+outcome)
}

func TestEvents_LifecycleAndObserver(t *testing.T) {
	dir, err := os.MkdirTemp("", "svcev")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mp, err := mock.New(ctx, mock.Config{Name: "mock", DataDir: dir, AgentPath: agentPath, ServerID: "evtest"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bus, obs := events.NewBus(64), &recObserver{}
	svc, err := sandbox.New(sandbox.Options{Store: st, Providers: []provider.Provider{mp}, DefaultProvider: "mock",
		Defaults: sandbox.Defaults{Image: "host", TTL: time.Minute, DefaultExecTimeout: 10 * time.Second, ReapInterval: time.Hour},
		Observer: obs, Events: bus})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	sub := bus.Subscribe(0)
	defer sub.Close()

	sb, err := svc.Create(ctx, sandbox.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := svc.Exec(ctx, sb.ID, sandbox.ExecRequest{Command: "exit 3"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if err := svc.Destroy(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{events.SandboxCreated, events.SandboxRunning, events.ExecStarted, events.ExecFinished, events.SandboxDestroyed}
	var got []events.Event
	for len(got) < len(want) {
		select {
		case ev := <-sub.C():
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d events, want %d", len(got), len(want))
		}
	}
	for i, ev := range got {
		if ev.Type != want[i] || ev.ID != uint64(i+1) {
			t.Errorf("event %d = %s #%d, want %s #%d", i, ev.Type, ev.ID, want[i], i+1)
		}
		var p struct {
			SandboxID string `json:"sandbox_id"`
			ExitCode  *int   `json:"exit_code"`
		}
		if err := json.Unmarshal(ev.Data, &p); err != nil || p.SandboxID != sb.ID {
			t.Errorf("event %s data %s: sandbox_id want %s", ev.Type, ev.Data, sb.ID)
		}
		if ev.Type == events.ExecFinished && (p.ExitCode == nil || *p.ExitCode != 3) {
			t.Errorf("exec.finished data %s, want exit_code 3", ev.Data)
		}
	}
	// Expiry: a sandbox past its ttl is reaped with sandbox.expired, then
	// sandbox.destroyed carrying the reason.
	short, err := svc.Create(ctx, sandbox.CreateRequest{TTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := svc.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v", n, err)
	}
	var tail []string
	for len(tail) < 4 {
		select {
		case ev := <-sub.C():
			var p sandbox.SandboxEvent
			json.Unmarshal(ev.Data, &p)
			if p.SandboxID != short.ID {
				t.Fatalf("event %s for %s, want %s", ev.Type, p.SandboxID, short.ID)
			}
			tail = append(tail, ev.Type+"/"+p.Reason)
		case <-time.After(5 * time.Second):
			t.Fatalf("expiry events: got %v", tail)
		}
	}
	if want := []string{"sandbox.created/", "sandbox.running/", "sandbox.expired/ttl passed", "sandbox.destroyed/expired"}; !sameEvents(tail, want) {
		t.Errorf("expiry events = %v, want %v", tail, want)
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.spawns) != 2 || obs.spawns[0] != "mock/cold/ok" {
		t.Errorf("spawns = %v, want [mock/cold/ok mock/cold/ok]", obs.spawns)
	}
	if len(obs.execs) != 1 || obs.execs[0] != "mock/ok" {
		t.Errorf("execs = %v, want [mock/ok]", obs.execs)
	}
}

func sameEvents(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
