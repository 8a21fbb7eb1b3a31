package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

var agentPath string // built once in TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "svc-agent")
	if err != nil {
		panic(err)
	}
	agentPath = filepath.Join(dir, "stacyvm-agent")
	cmd := exec.Command("go", "build", "-o", agentPath, "github.com/stacyvm/stacyvm/cmd/stacyvm-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type env struct {
	svc   *sandbox.Service
	store *sqlite.Store
	mock  *mock.Provider
	dir   string
	mcfg  mock.Config
}

// newEnv builds a Service on a real SQLite file and the mock provider (real
// agent processes). tweak may change the defaults and the mock config.
func newEnv(t *testing.T, tweak func(*sandbox.Defaults, *mock.Config)) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "svc") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: time.Hour,
		DefaultExecTimeout: 30 * time.Second, MaxExecTimeout: time.Minute, ReapInterval: time.Hour}
	mc := mock.Config{Name: "mock", DataDir: dir, AgentPath: agentPath, ServerID: "test"}
	if tweak != nil {
		tweak(&d, &mc)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	mp, err := mock.New(ctx, mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sandbox.New(sandbox.Options{Store: st, Providers: []provider.Provider{mp}, DefaultProvider: "mock", Defaults: d})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{svc: svc, store: st, mock: mp, dir: dir, mcfg: mc}
	t.Cleanup(func() {
		// Tests may swap in their own service (warm pools, reconcile); its
		// background loops must stop before the runtimes are removed, or a
		// pool refill would start agents nobody destroys.
		svc.Close()
		e.svc.Close()
		hs, _ := mp.List(ctx)
		for _, h := range hs {
			mp.Destroy(ctx, h)
		}
		st.Close()
		os.RemoveAll(dir)
	})
	return e
}

func (e *env) create(t *testing.T, req sandbox.CreateRequest) *sandbox.Sandbox {
	t.Helper()
	sb, err := e.svc.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return sb
}

func run(t *testing.T, svc *sandbox.Service, id string, req sandbox.ExecRequest) (sandbox.ExecResult, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	res, err := svc.Exec(context.Background(), id, req, &out, &errb)
	if err != nil {
		t.Fatalf("exec %+v: %v", req, err)
	}
	return res, out.String(), errb.String()
}

func TestStateMachine_Transitions(t *testing.T) {
	cases := []struct {
		from, to sandbox.State
		ok       bool
	}{
		{sandbox.StateCreating, sandbox.StateRunning, true},
		{sandbox.StateCreating, sandbox.StateDestroyed, true},
		{sandbox.StateRunning, sandbox.StateExpired, true},
		{sandbox.StateExpired, sandbox.StateRunning, false},
		{sandbox.StateDestroyed, sandbox.StateRunning, false},
		{sandbox.StateDestroyed, sandbox.StateCreating, false},
		{sandbox.StateError, sandbox.StateRunning, false},
		{sandbox.StateRunning, sandbox.StateCreating, false},
	}
	for _, c := range cases {
		if got := sandbox.CanTransition(c.from, c.to); got != c.ok {
			t.Errorf("CanTransition(%s, %s) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestCreate_RunsAndExecs(t *testing.T) {
	e := newEnv(t, nil)
	sb := e.create(t, sandbox.CreateRequest{Env: map[string]string{"GREETING": "hi"}, Metadata: map[string]string{"k": "v"}})
	if sb.State != sandbox.StateRunning || sb.Provider != "mock" || sb.Image != "host" {
		t.Fatalf("created %+v", sb)
	}
	if d := sb.ExpiresAt.Sub(sb.CreatedAt); d != time.Minute {
		t.Errorf("ttl = %s, want the default 1m", d)
	}
	res, out, _ := run(t, e.svc, sb.ID, sandbox.ExecRequest{Command: "echo $GREETING", Args: []string{"it's", "a b"}})
	if res.ExitCode != 0 || out != "hi it's a b\n" {
		t.Errorf("shell mode with quoted args: exit %d out %q", res.ExitCode, out)
	}
	_, out, _ = run(t, e.svc, sb.ID, sandbox.ExecRequest{Command: "echo", Args: []string{"$HOME", "; rm -rf /"}, Mode: sandbox.ModeArgv})
	if out != "$HOME ; rm -rf /\n" {
		t.Errorf("argv mode is literal: got %q", out)
	}
	res, _, _ = run(t, e.svc, sb.ID, sandbox.ExecRequest{Command: "exit 3"})
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", res.ExitCode)
	}
}

func TestCreate_Validation(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name string
		req  sandbox.CreateRequest
		want errs.Class
	}{
		{"negative ttl", sandbox.CreateRequest{TTL: -time.Second}, errs.Invalid},
		{"ttl over max", sandbox.CreateRequest{TTL: 2 * time.Hour}, errs.Limit},
		{"unknown provider", sandbox.CreateRequest{Provider: "nope"}, errs.Invalid},
		{"bad network", sandbox.CreateRequest{Network: "host"}, errs.Invalid},
		{"negative memory", sandbox.CreateRequest{MemoryMB: -1}, errs.Invalid},
		{"bad env key", sandbox.CreateRequest{Env: map[string]string{"A=B": "x"}}, errs.Invalid},
		{"image with spaces", sandbox.CreateRequest{Image: "a b"}, errs.Invalid},
	}
	for _, c := range cases {
		_, err := e.svc.Create(context.Background(), c.req)
		if got := errs.ClassOf(err); err == nil || got != c.want {
			t.Errorf("%s: got %v (%s), want class %s", c.name, err, got, c.want)
		}
	}
	if n, _ := e.store.Sandboxes().Count(context.Background(), store.SandboxFilter{}); n != 0 {
		t.Errorf("invalid requests wrote %d records, want 0", n)
	}
}

func TestCreate_ProviderFailureLeavesDestroyedRecord(t *testing.T) {
	e := newEnv(t, func(_ *sandbox.Defaults, mc *mock.Config) {
		mc.FailCreate = func(provider.Spec) error { return errs.New(errs.Invalid, "image broken not found") }
	})
	_, err := e.svc.Create(context.Background(), sandbox.CreateRequest{Image: "broken"})
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("got %v, want the provider's Invalid error", err)
	}
	recs, _ := e.store.Sandboxes().List(context.Background(), store.SandboxFilter{})
	if len(recs) != 1 || recs[0].State != "destroyed" || !strings.Contains(recs[0].Error, "image broken") {
		t.Fatalf("records after a failed create: %+v, want one destroyed record with the reason", recs)
	}
	list, _ := e.svc.List(context.Background(), sandbox.ListFilter{})
	if len(list) != 0 {
		t.Errorf("a failed create is listed: %+v", list)
	}
}

func TestCreate_LimitsHoldUnderConcurrency(t *testing.T) {
	e := newEnv(t, func(d *sandbox.Defaults, _ *mock.Config) { d.MaxSandboxes = 3 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, limited := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Create(context.Background(), sandbox.CreateRequest{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errs.Is(err, errs.Limit):
				limited++
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || limited != 5 {
		t.Errorf("created %d, limited %d; want 3 and 5", ok, limited)
	}
	a, err := e.svc.Admission(context.Background(), sandbox.CreateRequest{})
	if err != nil || a.Allowed || !a.Queueable || a.Reason != "max_sandboxes" || a.ActiveSandboxes != 3 {
		t.Errorf("admission at capacity: %+v %v", a, err)
	}
}

func TestCreate_ParallelCreatesOverlap(t *testing.T) {
	const delay = 400 * time.Millisecond
	e := newEnv(t, func(_ *sandbox.Defaults, mc *mock.Config) { mc.CreateDelay = delay })
	start := time.Now()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); e.create(t, sandbox.CreateRequest{}) }()
	}
	wg.Wait()
	if took := time.Since(start); took > 3*delay {
		t.Errorf("5 creates with a %s runtime delay took %s; creates are serialised", delay, took)
	}
}

func TestDestroy_WhileCreatingRemovesRuntime(t *testing.T) {
	e := newEnv(t, func(_ *sandbox.Defaults, mc *mock.Config) { mc.CreateDelay = 500 * time.Millisecond })
	errc := make(chan error, 1)
	go func() { _, err := e.svc.Create(context.Background(), sandbox.CreateRequest{}); errc <- err }()
	var id string
	for id == "" {
		recs, _ := e.store.Sandboxes().List(context.Background(), store.SandboxFilter{States: []string{"creating"}})
		if len(recs) == 1 {
			id = recs[0].ID
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.svc.Destroy(context.Background(), id); err != nil {
		t.Fatalf("destroy while creating: %v", err)
	}
	if err := <-errc; !errs.Is(err, errs.Conflict) {
		t.Errorf("create after a concurrent destroy: %v, want Conflict", err)
	}
	if hs, _ := e.mock.List(context.Background()); len(hs) != 0 {
		t.Errorf("runtime left behind: %+v", hs)
	}
}

func TestDestroy_Idempotence(t *testing.T) {
	e := newEnv(t, nil)
	sb := e.create(t, sandbox.CreateRequest{})
	if err := e.svc.Destroy(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{
		func() error { return e.svc.Destroy(context.Background(), sb.ID) },
		func() error { _, err := e.svc.Get(context.Background(), sb.ID); return err },
		func() error {
			_, err := e.svc.Exec(context.Background(), sb.ID, sandbox.ExecRequest{Command: "true"}, nil, nil)
			return err
		},
		func() error { _, err := e.svc.StatFile(context.Background(), sb.ID, "/"); return err },
		func() error { return e.svc.Destroy(context.Background(), "sb-../../etc") },
	} {
		if err := f(); !errs.Is(err, errs.NotFound) {
			t.Errorf("after destroy: %v, want NotFound", err)
		}
	}
}

func TestExec_TimeoutAndLimits(t *testing.T) {
	e := newEnv(t, nil)
	sb := e.create(t, sandbox.CreateRequest{})
	start := time.Now()
	res, _, _ := run(t, e.svc, sb.ID, sandbox.ExecRequest{Command: "sleep 30", Timeout: 300 * time.Millisecond})
	if !res.TimedOut || res.ExitCode != -1 || time.Since(start) > 3*time.Second {
		t.Errorf("timeout: %+v after %s", res, time.Since(start))
	}
	for _, c := range []struct {
		req  sandbox.ExecRequest
		want errs.Class
	}{
		{sandbox.ExecRequest{Command: "true", Timeout: -time.Second}, errs.Invalid},
		{sandbox.ExecRequest{Command: "true", Timeout: time.Hour}, errs.Limit},
		{sandbox.ExecRequest{Command: "", Mode: sandbox.ModeArgv}, errs.Invalid},
		{sandbox.ExecRequest{Command: "true", Mode: "bash"}, errs.Invalid},
		{sandbox.ExecRequest{Command: "   "}, errs.Invalid},
	} {
		_, err := e.svc.Exec(context.Background(), sb.ID, c.req, nil, nil)
		if errs.ClassOf(err) != c.want || err == nil {
			t.Errorf("%+v: got %v, want %s", c.req, err, c.want)
		}
	}
}

func TestFiles_RelativeAndTraversalPaths(t *testing.T) {
	e := newEnv(t, nil)
	sb := e.create(t, sandbox.CreateRequest{})
	ctx := context.Background()
	if err := e.svc.WriteFile(ctx, sb.ID, "notes/a.txt", 0o600, strings.NewReader("rel"), 3); err != nil {
		t.Fatal(err)
	}
	fi, err := e.svc.StatFile(ctx, sb.ID, "/workspace/notes/a.txt")
	if err != nil || fi.Path != "/workspace/notes/a.txt" || fi.Mode != "600" || fi.Size != 3 {
		t.Fatalf("relative path lands in /workspace: %+v %v", fi, err)
	}
	if err := e.svc.WriteFile(ctx, sb.ID, "/../../../x.txt", 0, strings.NewReader("t"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StatFile(ctx, sb.ID, "/x.txt"); err != nil {
		t.Errorf("/../../../x.txt should be /x.txt inside the sandbox: %v", err)
	}
	if err := e.svc.ChmodFile(ctx, sb.ID, "/x.txt", "9"); !errs.Is(err, errs.Invalid) {
		t.Errorf("bad chmod mode must be Invalid")
	}
	if err := e.svc.DeleteFile(ctx, sb.ID, "/", true); !errs.Is(err, errs.Invalid) {
		t.Errorf("delete / : %v, want Invalid", err)
	}
	got, err := e.svc.Glob(ctx, sb.ID, "**/*.txt")
	if err != nil || len(got) != 1 || got[0] != "/workspace/notes/a.txt" {
		t.Errorf("relative glob: %v %v", got, err)
	}
}

func TestExec_RuntimeDiedIsUnavailableAndRecorded(t *testing.T) {
	e := newEnv(t, nil)
	sb := e.create(t, sandbox.CreateRequest{})
	hs, _ := e.mock.List(context.Background())
	if len(hs) != 1 {
		t.Fatalf("runtimes: %+v", hs)
	}
	// Kill the agent behind the service's back: the runtime died.
	_, err := e.svc.Exec(context.Background(), sb.ID, sandbox.ExecRequest{Command: "kill -9 $PPID; sleep 5"}, nil, nil)
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("exec whose runtime dies mid-call: %v, want Unavailable", err)
	}
	_, err = e.svc.Exec(context.Background(), sb.ID, sandbox.ExecRequest{Command: "true"}, nil, nil)
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("exec on a dead runtime: %v, want Unavailable", err)
	}
	got, err := e.svc.Get(context.Background(), sb.ID)
	if err != nil || got.State != sandbox.StateError {
		t.Fatalf("state after runtime death: %+v %v, want error", got, err)
	}
	if err := e.svc.Destroy(context.Background(), sb.ID); err != nil {
		t.Errorf("destroying a failed sandbox: %v", err)
	}
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	kept := e.create(t, sandbox.CreateRequest{})
	vanished := e.create(t, sandbox.CreateRequest{})
	orphan := e.create(t, sandbox.CreateRequest{})

	// vanished: its runtime disappears behind the server's back.
	rec, _ := e.store.Sandboxes().Get(ctx, vanished.ID)
	var h provider.Handle
	mustUnmarshalHandle(t, rec.Handle, &h)
	if err := e.mock.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	// orphan: its record is gone (a crash before the record was written).
	if _, err := e.store.Sandboxes().Update(ctx, orphan.ID, func(sb *store.Sandbox) error {
		sb.State = "destroyed"
		sb.DestroyedAt = time.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// half-created: runtime up, record still creating without a handle.
	half := "sb-00000000000000aa"
	if _, err := e.mock.Create(ctx, provider.Spec{SandboxID: half, Image: "host"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.store.Sandboxes().Create(ctx, &store.Sandbox{ID: half, State: "creating", Provider: "mock", Image: "host", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// lost-create: record creating, no runtime at all.
	lost := "sb-00000000000000bb"
	if err := e.store.Sandboxes().Create(ctx, &store.Sandbox{ID: lost, State: "creating", Provider: "mock", Image: "host", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	rep, err := e.svc.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.ReconcileReport{Adopted: 1, MarkedDestroyed: 2, OrphansRemoved: 1, Kept: 1}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	for id, wantState := range map[string]string{kept.ID: "running", half: "running", vanished.ID: "destroyed", lost: "destroyed", orphan.ID: "destroyed"} {
		r, err := e.store.Sandboxes().Get(ctx, id)
		if err != nil || r.State != wantState {
			t.Errorf("%s: state %v (%v), want %s", id, r, err, wantState)
		}
	}
	if res, out, _ := run(t, e.svc, half, sandbox.ExecRequest{Command: "echo adopted"}); res.ExitCode != 0 || out != "adopted\n" {
		t.Errorf("adopted sandbox does not answer: %q", out)
	}
	hs, _ := e.mock.List(ctx)
	if len(hs) != 2 {
		t.Errorf("runtimes after reconcile: %d, want 2 (kept + adopted)", len(hs))
	}
}

func TestPrune_DestroysOnlyExpired(t *testing.T) {
	now := time.Now()
	clock := &fakeClock{t: now}
	e := newEnvClock(t, clock)
	old := e.create(t, sandbox.CreateRequest{TTL: time.Minute})
	young := e.create(t, sandbox.CreateRequest{TTL: time.Hour})
	clock.advance(2 * time.Minute)
	n, err := e.svc.Prune(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("prune: %d %v, want 1", n, err)
	}
	if _, err := e.svc.Get(context.Background(), old.ID); !errs.Is(err, errs.NotFound) {
		t.Errorf("expired sandbox still there: %v", err)
	}
	if _, err := e.svc.Get(context.Background(), young.ID); err != nil {
		t.Errorf("unexpired sandbox pruned: %v", err)
	}
	rec, _ := e.store.Sandboxes().Get(context.Background(), old.ID)
	if rec.Error != "expired" {
		t.Errorf("pruned record reason %q, want expired", rec.Error)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEnvClock(t *testing.T, c *fakeClock) *env {
	e := newEnv(t, nil)
	svc, err := sandbox.New(sandbox.Options{Store: e.store, Providers: []provider.Provider{e.mock}, DefaultProvider: "mock",
		Defaults: sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: 2 * time.Hour, ReapInterval: time.Hour}, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

func mustUnmarshalHandle(t *testing.T, b []byte, h *provider.Handle) {
	t.Helper()
	if err := json.Unmarshal(b, h); err != nil {
		t.Fatal(err)
	}
}

func TestReconcileSweep_SparesInFlightCreatesAndRemovesOrphans(t *testing.T) {
	e := newEnv(t, func(_ *sandbox.Defaults, mc *mock.Config) { mc.CreateDelay = 600 * time.Millisecond })
	ctx := context.Background()
	svc, err := sandbox.New(sandbox.Options{Store: e.store, Providers: []provider.Provider{e.mock}, DefaultProvider: "mock",
		Defaults: sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: time.Hour, DefaultExecTimeout: time.Minute,
			ReapInterval: 50 * time.Millisecond, ReconcileInterval: 50 * time.Millisecond, CreateTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	svc.Start(ctx)
	// An orphan: a runtime whose record says destroyed.
	orphan := "sb-00000000000000cc"
	if _, err := e.mock.Create(ctx, provider.Spec{SandboxID: orphan, Image: "host"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.store.Sandboxes().Create(ctx, &store.Sandbox{ID: orphan, State: "destroyed", Provider: "mock", Image: "host",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), DestroyedAt: now}); err != nil {
		t.Fatal(err)
	}
	// Creates in flight while the sweep runs every 50 ms must succeed.
	for range 3 {
		sb, err := svc.Create(ctx, sandbox.CreateRequest{})
		if err != nil {
			t.Fatalf("create during sweeps: %v", err)
		}
		if res, out, _ := run(t, svc, sb.ID, sandbox.ExecRequest{Command: "echo ok"}); res.ExitCode != 0 || out != "ok\n" {
			t.Fatalf("sandbox created during sweeps does not work: %q", out)
		}
		// Destroy races the sweep; it must still answer success.
		if err := svc.Destroy(ctx, sb.ID); err != nil {
			t.Fatalf("destroy during sweeps: %v", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		hs, _ := e.mock.List(ctx)
		if len(hs) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	hs, _ := e.mock.List(ctx)
	t.Fatalf("the sweep left runtimes behind: %+v", hs)
}
