// Package providertest is the conformance suite every provider.Provider
// passes on its real runtime: lifecycle, exec and files through the agent,
// concurrency, listing and recovery by a fresh provider instance. It uses
// only the Provider interface and agent.Client.
package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Harness describes the provider under test.
type Harness struct {
	// Provider is the instance under test.
	Provider provider.Provider
	// Spec returns a valid spec with a fresh sandbox id (see NewSandboxID).
	// Spec.Env must be passed through; the suite sets its own entries.
	Spec func(t *testing.T) provider.Spec
	// Reopen returns a new instance on the same state, as after a restart.
	Reopen func(t *testing.T) provider.Provider
	// Slow widens time bounds for runtimes with slow starts (containers, VMs).
	Slow bool
}

// NewSandboxID returns "sb-" followed by 12 random hex digits.
func NewSandboxID() string {
	var b [6]byte
	rand.Read(b[:])
	return "sb-" + hex.EncodeToString(b[:])
}

// Run runs the whole suite. Every sandbox it creates is destroyed by
// t.Cleanup, even when a subtest fails.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h, p: h.Provider}
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("InspectUnknownIsMissing", s.testInspectUnknown)
	t.Run("Exec", s.testExec)
	t.Run("Files", s.testFiles)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("ListContainsCreated", s.testList)
	t.Run("ReopenAdoptsSandbox", s.testReopen)
}

type suite struct {
	h Harness
	p provider.Provider
}

// Spec env entries the suite checks in exec tests.
const (
	specEnvKey = "STACY_SPEC_ENV"
	specEnvVal = "from-spec"
)

func (s *suite) timeout() time.Duration {
	if s.h.Slow {
		return 90 * time.Second
	}
	return 30 * time.Second
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) spec(t *testing.T) provider.Spec {
	sp := s.h.Spec(t)
	if sp.Env == nil {
		sp.Env = map[string]string{}
	}
	sp.Env[specEnvKey] = specEnvVal
	return sp
}

// create makes a sandbox from spec and registers its destruction.
func (s *suite) create(t *testing.T, p provider.Provider, spec provider.Spec) (provider.Handle, time.Duration) {
	t.Helper()
	t.Cleanup(func() { destroyQuietly(t, p, provider.Handle{Provider: p.Name(), SandboxID: spec.SandboxID}) })
	start := time.Now()
	h, err := p.Create(s.ctx(t), spec)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.SandboxID, err)
	}
	t.Cleanup(func() { destroyQuietly(t, p, h) })
	return h, took
}

func destroyQuietly(t *testing.T, p provider.Provider, h provider.Handle) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Destroy(ctx, h); err != nil {
		t.Errorf("cleanup: Destroy(%s): %v", h.SandboxID, err)
	}
}

// sandbox creates a sandbox and returns its agent client.
func (s *suite) sandbox(t *testing.T) (provider.Handle, *agent.Client) {
	t.Helper()
	h, _ := s.create(t, s.p, s.spec(t))
	c, err := s.p.Agent(s.ctx(t), h)
	if err != nil {
		t.Fatalf("Agent(%s): %v", h.SandboxID, err)
	}
	return h, c
}

func (s *suite) testLifecycle(t *testing.T) {
	p := s.p
	ctx := s.ctx(t)
	spec := s.spec(t)
	h, took := s.create(t, p, spec)
	t.Logf("create: %v", took)
	if h.SandboxID != spec.SandboxID || h.Provider != p.Name() || h.RuntimeID == "" {
		t.Errorf("handle = %+v, want sandbox %s, provider %s and a runtime id", h, spec.SandboxID, p.Name())
	}
	st, err := p.Inspect(ctx, h)
	if err != nil || st.State != provider.RuntimeRunning {
		t.Fatalf("Inspect after Create = %+v, %v; want running", st, err)
	}
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	info, err := c.Ping(ctx)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if info.ProtocolVersion != agent.ProtocolVersion {
		t.Errorf("agent protocol version = %d, want %d", info.ProtocolVersion, agent.ProtocolVersion)
	}
	start := time.Now()
	if out, _, res := run(t, c, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo ready"}}); out != "ready\n" || res.ExitCode != 0 {
		t.Errorf("first exec = %q (exit %d), want %q", out, res.ExitCode, "ready\n")
	}
	t.Logf("first exec: %v", time.Since(start))
	if c2, err := p.Agent(ctx, h); err != nil || c2 != c {
		t.Errorf("second Agent() = %p, %v; want the cached client %p", c2, err, c)
	}
	if sr, ok := p.(provider.StatsReporter); ok {
		if st, err := sr.Stats(ctx, h); err != nil || st.MemBytes == 0 {
			t.Errorf("Stats = %+v, %v; want memory use > 0", st, err)
		} else {
			t.Logf("stats: %+v", st)
		}
	}
	if lr, ok := p.(provider.LogReader); ok {
		if _, err := lr.Logs(ctx, h, 10); err != nil {
			t.Errorf("Logs: %v", err)
		}
	}

	start = time.Now()
	if err := p.Destroy(ctx, h); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	took = time.Since(start)
	t.Logf("destroy: %v", took)
	if limit := 2 * time.Second; took > limit {
		t.Errorf("Destroy took %v, want < %v", took, limit)
	}
	if st, err := p.Inspect(ctx, h); err != nil || st.State != provider.RuntimeMissing {
		t.Errorf("Inspect after Destroy = %+v, %v; want missing, nil", st, err)
	}
	if err := p.Destroy(ctx, h); err != nil {
		t.Errorf("second Destroy = %v, want nil (idempotent)", err)
	}

	// Using the sandbox afterwards fails fast, through a fresh Agent call
	// or through the client obtained before.
	for name, get := range map[string]func(context.Context) (*agent.Client, error){
		"fresh":    func(ctx context.Context) (*agent.Client, error) { return p.Agent(ctx, h) },
		"previous": func(context.Context) (*agent.Client, error) { return c, nil },
	} {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		cl, err := get(actx)
		if err == nil {
			_, err = cl.Ping(actx)
		}
		cancel()
		if err == nil {
			t.Errorf("%s agent after Destroy: Ping succeeded, want an error", name)
		} else if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s agent after Destroy failed after %v, want < 3s: %v", name, el, err)
		}
	}
}

func (s *suite) testInspectUnknown(t *testing.T) {
	h := provider.Handle{Provider: s.p.Name(), SandboxID: NewSandboxID()}
	st, err := s.p.Inspect(s.ctx(t), h)
	if err != nil || st.State != provider.RuntimeMissing {
		t.Errorf("Inspect(never created) = %+v, %v; want missing, nil", st, err)
	}
	if err := s.p.Destroy(s.ctx(t), h); err != nil {
		t.Errorf("Destroy(never created) = %v, want nil", err)
	}
}

func (s *suite) testConcurrency(t *testing.T) {
	t.Run("ParallelExecsOnOneSandbox", func(t *testing.T) {
		_, c := s.sandbox(t)
		const n = 20
		var wg sync.WaitGroup
		errc := make(chan error, n)
		start := time.Now()
		for i := range n {
			wg.Go(func() {
				var out bytes.Buffer
				res, err := c.Exec(s.ctx(t), agent.ExecRequest{Argv: []string{"/bin/sh", "-c", fmt.Sprintf("sleep 0.3; echo %d", i)}}, &out, nil)
				switch {
				case err != nil:
					errc <- fmt.Errorf("exec %d: %w", i, err)
				case res.ExitCode != 0 || out.String() != fmt.Sprintf("%d\n", i):
					errc <- fmt.Errorf("exec %d = %q (exit %d), want %q", i, out.String(), res.ExitCode, fmt.Sprintf("%d\n", i))
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		el := time.Since(start)
		t.Logf("%d parallel execs of sleep 0.3: %v", n, el)
		if el > n*300*time.Millisecond/2 {
			t.Errorf("%d parallel execs took %v: they do not run in parallel", n, el)
		}
	})
	t.Run("ParallelCreates", func(t *testing.T) {
		const n = 4
		var wg sync.WaitGroup
		var mu sync.Mutex
		var took []time.Duration
		start := time.Now()
		for range n {
			spec := s.spec(t)
			t.Cleanup(func() { destroyQuietly(t, s.p, provider.Handle{Provider: s.p.Name(), SandboxID: spec.SandboxID}) })
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.timeout())
				defer cancel()
				t0 := time.Now()
				h, err := s.p.Create(ctx, spec)
				if err != nil {
					t.Errorf("parallel Create(%s): %v", spec.SandboxID, err)
					return
				}
				mu.Lock()
				took = append(took, time.Since(t0))
				mu.Unlock()
				c, err := s.p.Agent(ctx, h)
				if err == nil {
					_, err = c.Ping(ctx)
				}
				if err != nil {
					t.Errorf("agent of %s: %v", spec.SandboxID, err)
				}
			})
		}
		wg.Wait()
		t.Logf("%d parallel creates: wall %v, each %v", n, time.Since(start), took)
	})
}

func (s *suite) testList(t *testing.T) {
	var hs []provider.Handle
	for range 2 {
		h, _ := s.create(t, s.p, s.spec(t))
		hs = append(hs, h)
	}
	got, err := s.p.List(s.ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, h := range hs {
		i := slices.IndexFunc(got, func(g provider.Handle) bool { return g.SandboxID == h.SandboxID })
		if i < 0 {
			t.Errorf("List() lacks %s; got %v", h.SandboxID, ids(got))
			continue
		}
		if got[i].RuntimeID != h.RuntimeID || got[i].Provider != h.Provider {
			t.Errorf("List() entry = %+v, want runtime id %s and provider %s", got[i], h.RuntimeID, h.Provider)
		}
	}
}

func (s *suite) testReopen(t *testing.T) {
	if s.h.Reopen == nil {
		t.Skip("harness has no Reopen")
	}
	h, _ := s.create(t, s.p, s.spec(t))
	p2 := s.h.Reopen(t)
	if cl, ok := p2.(interface{ Close() error }); ok {
		t.Cleanup(func() { cl.Close() })
	}
	ctx := s.ctx(t)
	got, err := p2.List(ctx)
	if err != nil {
		t.Fatalf("reopened List: %v", err)
	}
	i := slices.IndexFunc(got, func(g provider.Handle) bool { return g.SandboxID == h.SandboxID })
	if i < 0 {
		t.Fatalf("reopened List() lacks %s; got %v", h.SandboxID, ids(got))
	}
	adopted := got[i]
	if st, err := p2.Inspect(ctx, adopted); err != nil || st.State != provider.RuntimeRunning {
		t.Fatalf("reopened Inspect = %+v, %v; want running", st, err)
	}
	c, err := p2.Agent(ctx, adopted)
	if err != nil {
		t.Fatalf("reopened Agent: %v", err)
	}
	if out, _, _ := run(t, c, agent.ExecRequest{Argv: []string{"echo", "adopted"}}); out != "adopted\n" {
		t.Errorf("exec through reopened provider = %q, want %q", out, "adopted\n")
	}
	// The new instance can destroy what the old one created.
	if err := p2.Destroy(ctx, adopted); err != nil {
		t.Fatalf("reopened Destroy: %v", err)
	}
	if st, err := s.p.Inspect(ctx, h); err != nil || st.State != provider.RuntimeMissing {
		t.Errorf("original Inspect after reopened Destroy = %+v, %v; want missing", st, err)
	}
}

func ids(hs []provider.Handle) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.SandboxID)
	}
	sort.Strings(out)
	return out
}

// run executes req and returns stdout, stderr and the result; an error
// fails the test.
func run(t *testing.T, c *agent.Client, req agent.ExecRequest) (string, string, agent.ExecResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	res, err := c.Exec(ctx, req, &out, &errb)
	if err != nil {
		t.Fatalf("Exec(%q): %v", req.Argv, err)
	}
	return out.String(), errb.String(), res
}

// wantClass fails unless err has class want.
func wantClass(t *testing.T, what string, err error, want errs.Class) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got nil error, want %v", what, want)
		return
	}
	if got := errs.ClassOf(err); got != want {
		t.Errorf("%s: got class %v (%v), want %v", what, got, err, want)
	}
}

// countWriter counts bytes written.
type countWriter struct {
	mu sync.Mutex
	n  int64
}

func (w *countWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.n += int64(len(b))
	w.mu.Unlock()
	return len(b), nil
}
