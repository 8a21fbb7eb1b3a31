package sandbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

func TestWarmPool_ClaimRefillAndIsolation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	svc, err := sandbox.New(sandbox.Options{Store: e.store, Providers: []provider.Provider{e.mock}, DefaultProvider: "mock",
		Defaults:  sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: time.Hour, ReapInterval: time.Hour, DefaultExecTimeout: time.Minute},
		WarmPools: map[string]int{"host": 2}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	svc.Start(ctx)
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			ps, _ := svc.WarmPools(ctx)
			if len(ps) == 1 && ps[0].Ready == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		ps, _ := svc.WarmPools(ctx)
		t.Fatalf("pool %+v, want %d ready", ps, want)
	}
	waitReady(2)
	if list, _ := svc.List(ctx, sandbox.ListFilter{}); len(list) != 0 {
		t.Fatalf("warm sandboxes are listed: %+v", list)
	}
	warm, _ := e.store.Sandboxes().List(ctx, store.SandboxFilter{States: []string{"warm"}})
	if _, err := svc.Get(ctx, warm[0].ID); !errs.Is(err, errs.NotFound) {
		t.Fatalf("an unclaimed warm sandbox is reachable by id: %v", err)
	}

	start := time.Now()
	sb, err := svc.Create(ctx, sandbox.CreateRequest{Env: map[string]string{"WHO": "claimer"}, OwnerID: "alice", Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("warm claim took %s", time.Since(start))
	if sb.State != sandbox.StateRunning || sb.OwnerID != "alice" || sb.Metadata["k"] != "v" || sb.Metadata["stacyvm.warm"] != "" {
		t.Errorf("claimed sandbox %+v", sb)
	}
	if res, out, _ := run(t, svc, sb.ID, sandbox.ExecRequest{Command: "echo $WHO"}); res.ExitCode != 0 || out != "claimer\n" {
		t.Errorf("request env not applied to the claimed sandbox: %q", out)
	}
	isWarm := false
	for _, w := range warm {
		isWarm = isWarm || w.ID == sb.ID
	}
	if !isWarm {
		t.Errorf("create did not use the warm pool")
	}
	waitReady(2) // refilled
	// A request the pool cannot serve creates cold.
	cold, err := svc.Create(ctx, sandbox.CreateRequest{MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warm {
		if w.ID == cold.ID {
			t.Errorf("a non-matching request got a pool sandbox")
		}
	}
	if _, err := svc.Create(ctx, sandbox.CreateRequest{Metadata: map[string]string{"stacyvm.warm": "x"}}); !errs.Is(err, errs.Invalid) {
		t.Errorf("reserved metadata key accepted: %v", err)
	}
}

// TestWarmPool_BurstIsServedFromThePool: a burst as large as the pool is
// served entirely from it, each warm sandbox handed out once, even though
// every claimer races the others for the same records (was: claimers that
// lost three races fell back to a cold create while warm sandboxes
// remained).
func TestWarmPool_BurstIsServedFromThePool(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	const n = 30
	svc, err := sandbox.New(sandbox.Options{Store: e.store, Providers: []provider.Provider{e.mock}, DefaultProvider: "mock",
		Defaults:  sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: time.Hour, ReapInterval: time.Hour, DefaultExecTimeout: time.Minute},
		WarmPools: map[string]int{"host": n}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	svc.Start(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, _ := svc.WarmPools(ctx)
		if len(ps) == 1 && ps[0].Ready == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool did not fill: %+v", ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	warm, _ := e.store.Sandboxes().List(ctx, store.SandboxFilter{States: []string{"warm"}})
	pooled := map[string]bool{}
	for _, w := range warm {
		pooled[w.ID] = true
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]int{}
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb, err := svc.Create(ctx, sandbox.CreateRequest{})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[sb.ID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("%d distinct sandboxes for %d creates", len(got), n)
	}
	for id, k := range got {
		if k != 1 {
			t.Errorf("%s handed out %d times", id, k)
		}
		if !pooled[id] {
			t.Errorf("%s was created cold while the pool had sandboxes", id)
		}
	}
}
