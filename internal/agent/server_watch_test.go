package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestWatch_ReportsCreateModifyDelete(t *testing.T) {
	a := startAgent(t)
	dir := filepath.Join(a.root, "w")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(chan agent.WatchEvent, 100)
	done := make(chan error, 1)
	go func() {
		done <- a.client.Watch(ctx, "/w", true, func(ev agent.WatchEvent) error {
			events <- ev
			return nil
		})
	}()
	next := func() agent.WatchEvent {
		select {
		case ev := <-events:
			return ev
		case <-ctx.Done():
			t.Fatal("timed out waiting for a watch event")
			return agent.WatchEvent{}
		}
	}
	if ev := next(); ev.Type != agent.WatchReady {
		t.Fatalf("first event %+v, want ready", ev)
	}
	expect := func(typ, p string) {
		t.Helper()
		for {
			ev := next()
			if ev.Type == typ && ev.Path == p {
				return
			}
			t.Logf("skipping %+v while waiting for %s %s", ev, typ, p)
		}
	}
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("1"), 0o644)
	expect(agent.WatchCreate, "/w/sub/f")
	f, _ := os.OpenFile(filepath.Join(dir, "sub", "f"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("2"))
	f.Close()
	expect(agent.WatchModify, "/w/sub/f")
	os.MkdirAll(filepath.Join(dir, "n1", "n2"), 0o755)
	os.WriteFile(filepath.Join(dir, "n1", "n2", "g"), nil, 0o644)
	expect(agent.WatchCreate, "/w/n1/n2/g")
	os.Remove(filepath.Join(dir, "sub", "f"))
	expect(agent.WatchDelete, "/w/sub/f")
	os.RemoveAll(dir)
	expect(agent.WatchDelete, "/w")
	if err := <-done; err != nil {
		t.Errorf("Watch ended with %v after the root was deleted, want nil", err)
	}
}

func TestWatch_BadInput(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	noop := func(agent.WatchEvent) error { return nil }
	if err := a.client.Watch(ctx, "/missing", true, noop); !errs.Is(err, errs.NotFound) {
		t.Errorf("missing path: %v, want NotFound", err)
	}
	if err := a.client.Watch(ctx, "relative", true, noop); !errs.Is(err, errs.Invalid) {
		t.Errorf("relative path: %v, want Invalid", err)
	}
	stop := errors.New("stop")
	os.WriteFile(filepath.Join(a.root, "file"), nil, 0o644)
	if err := a.client.Watch(ctx, "/file", true, func(agent.WatchEvent) error { return stop }); err != stop {
		t.Errorf("callback error: %v, want it returned", err)
	}
}
