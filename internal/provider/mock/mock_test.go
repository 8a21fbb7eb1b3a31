package mock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
)

// agentPath is the agent binary built once by TestMain; read-only after.
var agentPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-mock-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	agentPath = filepath.Join(dir, "stacyvm-agent")
	build := exec.Command("go", "build", "-o", agentPath, "github.com/stacyvm/stacyvm/cmd/stacyvm-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		return 1
	}
	// A canary the sandboxes must not inherit: the mock starts agents with
	// a clean environment.
	os.Setenv("STACYVM_LEAK_CANARY", "secret")
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

func newProvider(t *testing.T, dataDir, serverID string) *mock.Provider {
	t.Helper()
	p, err := mock.New(context.Background(), mock.Config{DataDir: dataDir, AgentPath: agentPath, ServerID: serverID}, nil)
	if err != nil {
		t.Fatalf("mock.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	// t.TempDir() can be long; unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "svm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestConformance(t *testing.T) {
	dataDir := shortTempDir(t)
	serverID := "test-" + providertest.NewSandboxID()
	p := newProvider(t, dataDir, serverID)
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec: func(t *testing.T) provider.Spec {
			return provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "host", Labels: map[string]string{"stacyvm.test": "1"}}
		},
		Reopen: func(t *testing.T) provider.Provider { return newProvider(t, dataDir, serverID) },
	})
}

func TestCreate_ScriptedFailureLeavesNothing(t *testing.T) {
	dataDir := shortTempDir(t)
	boom := errs.New(errs.Limit, "scripted")
	p, err := mock.New(context.Background(), mock.Config{DataDir: dataDir, AgentPath: agentPath, ServerID: "s1",
		FailCreate: func(spec provider.Spec) error {
			if spec.Image == "fail" {
				return boom
			}
			return nil
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Create(context.Background(), provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "fail"})
	if !errors.Is(err, boom) {
		t.Fatalf("Create = %v, want the scripted error", err)
	}
	if hs, _ := p.List(context.Background()); len(hs) != 0 {
		t.Errorf("List after failed create = %v, want empty", hs)
	}
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "mock")); len(ents) != 0 {
		t.Errorf("failed create left %d entries in the data dir", len(ents))
	}
}

func TestCreate_DelayHonoursContext(t *testing.T) {
	p, err := mock.New(context.Background(), mock.Config{DataDir: shortTempDir(t), AgentPath: agentPath, ServerID: "s1", CreateDelay: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID()}); err == nil {
		t.Fatal("Create succeeded despite a cancelled context")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Create returned after %v, want about 100ms", el)
	}
}

func TestList_OtherServersSandboxesAreNotOurs(t *testing.T) {
	dataDir := shortTempDir(t)
	a := newProvider(t, dataDir, "server-a")
	b := newProvider(t, dataDir, "server-b")
	h, err := a.Create(context.Background(), provider.Spec{SandboxID: providertest.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Destroy(context.Background(), h) })
	if hs, _ := b.List(context.Background()); len(hs) != 0 {
		t.Errorf("server-b lists %v, want nothing", hs)
	}
	if hs, _ := a.List(context.Background()); len(hs) != 1 {
		t.Errorf("server-a lists %v, want its sandbox", hs)
	}
}

func TestInspect_KilledAgentIsStopped(t *testing.T) {
	p := newProvider(t, shortTempDir(t), "s1")
	h, err := p.Create(context.Background(), provider.Spec{SandboxID: providertest.NewSandboxID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	c, _ := p.Agent(context.Background(), h)
	info, err := c.Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := os.FindProcess(info.PID)
	proc.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := p.Inspect(context.Background(), h)
		if err == nil && st.State == provider.RuntimeStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect after kill = %+v, %v; want stopped", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lr := provider.LogReader(p)
	if _, err := lr.Logs(context.Background(), h, 5); err != nil {
		t.Errorf("Logs: %v", err)
	}
}
