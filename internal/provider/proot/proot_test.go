package proot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/proot"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
)

const busybox = "stacyvm/busybox:latest"

// env is set once by TestMain and read-only afterwards.
var testEnv struct {
	agentPath string
	serverID  string
	skip      string
}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-proot-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testEnv.agentPath = filepath.Join(dir, "stacyvm-agent")
	testEnv.serverID = "test-" + providertest.NewSandboxID()
	build := exec.Command("go", "build", "-o", testEnv.agentPath, "github.com/stacyvm/stacyvm/cmd/stacyvm-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		return 1
	}
	// Preconditions: proot itself, and the engine the images come from.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range proot.HostChecks(ctx, proot.Config{}) {
		if c.Status == provider.CheckPass || c.Name == "cgroup v1 limits" {
			continue
		}
		msg := fmt.Sprintf("proot host check %q: %s %s", c.Name, c.Status, c.Detail)
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, msg+" (CI=true: proot is required; run scripts/ci-prepare.sh)")
			return 1
		}
		testEnv.skip = msg + "; set CI=true to make this a failure"
		break
	}
	return m.Run()
}

// shortTempDir keeps <dir>/sb/<id>/run/agent.sock under the socket limit.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "svp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newProvider(t *testing.T, dataDir string) *proot.Provider {
	t.Helper()
	if testEnv.skip != "" {
		t.Skip(testEnv.skip)
	}
	p, err := proot.New(context.Background(), proot.Config{DataDir: dataDir, AgentPath: testEnv.agentPath, ServerID: testEnv.serverID}, nil)
	if err != nil {
		t.Fatalf("proot.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	return p
}

func spec() provider.Spec {
	return provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, MemoryMB: 256}
}

func sandbox(t *testing.T, p *proot.Provider, sp provider.Spec) (provider.Handle, *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := p.Create(ctx, sp)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Destroy(ctx, h); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	return h, c
}

func sh(t *testing.T, c *agent.Client, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}, &out, &out)
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return out.String(), res.ExitCode
}

func TestConformance(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec:     func(t *testing.T) provider.Spec { return spec() },
		Reopen:   func(t *testing.T) provider.Provider { return newProvider(t, dataDir) },
		Slow:     true,
	})
}

func TestCapabilities_NotABoundary(t *testing.T) {
	p := newProvider(t, shortTempDir(t))
	c := p.Capabilities()
	if c.Boundary || c.Isolation != provider.IsolationUserspace {
		t.Errorf("capabilities = %+v, want userspace and security_boundary false", c)
	}
	if len(c.NetworkModes) != 1 || c.NetworkModes[0] != proot.NetworkHost {
		t.Errorf("network modes = %v, want [host]", c.NetworkModes)
	}
}

// TestSandboxesHaveTheirOwnRootfs: a write in one sandbox's / is invisible
// to another made from the same image, and to the image cache.
func TestSandboxesHaveTheirOwnRootfs(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	ha, a := sandbox(t, p, spec())
	_, b := sandbox(t, p, spec())
	if out, code := sh(t, a, "echo mine > /etc/only-a && cat /etc/only-a"); code != 0 || out != "mine\n" {
		t.Fatalf("write in a = %q (exit %d)", out, code)
	}
	if out, code := sh(t, b, "cat /etc/only-a 2>&1"); code == 0 {
		t.Errorf("sandbox b sees a's file: %q", out)
	}
	// As root the roots are overlay mounts (copy-on-write, ~10 ms each);
	// Destroy unmounts them (checked in TestDestroyKillsWholeTree).
	if os.Geteuid() == 0 {
		mounts, _ := os.ReadFile("/proc/self/mounts")
		if !strings.Contains(string(mounts), filepath.Join(dataDir, "sb", ha.SandboxID, "root")+" overlay") {
			t.Errorf("sandbox root is not an overlay mount while running as root")
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dataDir, "images", "*", "rootfs", "etc", "only-a"))
	if len(matches) != 0 {
		t.Errorf("the image cache was modified: %v", matches)
	}
	// Exec and the file API see the same paths.
	ctx := context.Background()
	if err := a.WriteFile(ctx, "/workspace/via-api.txt", 0o644, strings.NewReader("api"), 3); err != nil {
		t.Fatal(err)
	}
	if out, _ := sh(t, a, "cat /workspace/via-api.txt; pwd"); out != "api/workspace\n" {
		t.Errorf("exec sees %q, want the file written through the API and cwd /workspace", out)
	}
}

// TestSymlinkEscapesStayInside: symlinks to / and ../../.. made inside the
// sandbox never lead outside its root. Through exec (proot translation) a
// write lands in the sandbox's own /tmp; the file API either refuses the
// path (400) or writes inside; nothing ever appears on the host.
func TestSymlinkEscapesStayInside(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	h, c := sandbox(t, p, spec())
	marker := "stacyvm-escape-" + strconv.Itoa(os.Getpid()) + "-" + h.SandboxID
	hostTarget := filepath.Join("/tmp", marker)
	if out, code := sh(t, c, "ln -s / /workspace/toroot && ln -s ../../../../../../.. /workspace/up"); code != 0 {
		t.Fatalf("ln: %s", out)
	}
	ctx := context.Background()
	inside := filepath.Join(dataDir, "sb", h.SandboxID, "root", "tmp")
	for _, link := range []string{"toroot", "up"} {
		api := marker + "-api-" + link
		viaExec := marker + "-exec-" + link
		t.Cleanup(func() { os.Remove(filepath.Join("/tmp", api)); os.Remove(filepath.Join("/tmp", viaExec)) })

		err := c.WriteFile(ctx, "/workspace/"+link+"/tmp/"+api, 0o644, strings.NewReader("x"), 1)
		if c := errs.ClassOf(err); err != nil && c != errs.Invalid && c != errs.Forbidden {
			t.Errorf("WriteFile through %s: %v, want success inside, or refused as Invalid/Forbidden", link, err)
		}
		if _, serr := os.Stat(filepath.Join("/tmp", api)); serr == nil {
			t.Errorf("file API write through %s escaped to the host's /tmp", link)
		}
		if _, serr := os.Stat(filepath.Join(inside, api)); err == nil && serr != nil {
			t.Errorf("file API write through %s succeeded but is not in the sandbox's /tmp: %v", link, serr)
		}

		if out, _ := sh(t, c, "echo y > /workspace/"+link+"/tmp/"+viaExec+" && ls /tmp"); !strings.Contains(out, viaExec) {
			t.Errorf("exec write through %s is not in the sandbox's /tmp: %q", link, out)
		}
		if _, err := os.Stat(filepath.Join(inside, viaExec)); err != nil {
			t.Errorf("exec write through %s is not in the sandbox's root on the host: %v", link, err)
		}
		if _, err := os.Stat(filepath.Join("/tmp", viaExec)); err == nil {
			t.Errorf("exec write through %s escaped to the host", link)
		}
	}
	if _, err := os.Stat(hostTarget); err == nil {
		t.Errorf("%s appeared on the host", hostTarget)
	}
}

// TestDestroyKillsWholeTree: a process that left the exec's process group
// and session (setsid) survives the exec's timeout kill, but not Destroy:
// the sandbox's cgroup holds it. The sandbox dir is removed too.
func TestDestroyKillsWholeTree(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := p.Create(ctx, spec())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Agent(ctx, h)
	// The exec returns when its shell exits; the setsid sleep lives on
	// (under its proot) until Destroy.
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo started"}, TimeoutMS: 10000}, io.Discard, io.Discard)
	if err != nil || res.TimedOut || res.ExitCode != 0 {
		t.Fatalf("exec = %+v, %v; want exit 0 before its timeout", res, err)
	}
	pids := findPids(t, "sleep 1000", h.SandboxID)
	if len(pids) == 0 {
		t.Fatal("background sleep not found on the host")
	}
	if err := p.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(b), ") Z") {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Errorf("pid %d survived Destroy", pid)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "sb", h.SandboxID)); !os.IsNotExist(err) {
		t.Errorf("sandbox dir still there: %v", err)
	}
	if mounts, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(mounts), filepath.Join(dataDir, "sb", h.SandboxID)) {
		t.Errorf("the sandbox's overlay is still mounted after Destroy")
	}
}

// TestExecTimeoutKillsWholeTree: an exec's timeout kills, as seen from the
// host, the exec's shell, its background child, a grandchild in a subshell,
// the wrapper's shell and the exec's proot tracer; the agent and the sandbox
// live on. (PRoot shares the host's /proc: pids written inside are host
// pids. certify once counted `ps | grep sleep` inside the sandbox, which
// lists every process on the machine, and failed whenever anything else on
// the host ran "sleep 30…"; the processes themselves were gone.)
func TestExecTimeoutKillsWholeTree(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	h, c := sandbox(t, p, spec())
	root := filepath.Join(dataDir, "sb", h.SandboxID, "root")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := "echo $$ $PPID > /workspace/tree.pids; sleep 61 & echo $! >> /workspace/tree.pids; " +
		"(sleep 62 & echo $! >> /workspace/tree.pids; wait) & echo $! >> /workspace/tree.pids; wait"
	start := time.Now()
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}, TimeoutMS: 1000}, io.Discard, io.Discard)
	if err != nil || !res.TimedOut || res.ExitCode != -1 {
		t.Fatalf("exec = %+v, %v; want it to end by its timeout", res, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timed-out exec returned after %v", el)
	}
	b, err := os.ReadFile(filepath.Join(root, "workspace", "tree.pids"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file %q", b)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 5 { // shell, wrapper shell, child, grandchild, subshell
		t.Fatalf("pid file %q, want 5 pids", b)
	}
	running := func(pid int) bool {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err == nil && !strings.Contains(string(st), ") Z")
	}
	tracers := func() []int { // this sandbox's proot processes
		var out []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if strings.Contains(string(cl), "\x00-r\x00"+root+"\x00") {
				pid, _ := strconv.Atoi(e.Name())
				out = append(out, pid)
			}
		}
		return out
	}
	var left []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = slices.DeleteFunc(append(slices.Clone(pids), tracers()...), func(pid int) bool { return !running(pid) })
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, pid := range left {
		cl, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		t.Errorf("pid %d (%q) still runs 5s after the exec timed out", pid, cl)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if out, code := sh(t, c, "echo alive"); out != "alive\n" || code != 0 {
		t.Errorf("exec after the timeout = %q exit %d; the sandbox should live on", out, code)
	}
}

// TestExec_BackgroundProcessDoesNotHoldExec: `cmd &` returns as soon as the
// shell exits, with the shell's exit code, as in a container (proot itself
// waits for every tracee: the wrapper reports the shell's exit on the
// agent's status pipe). The background process keeps running inside the
// sandbox's root: its late write lands in the sandbox, not on the host.
func TestExec_BackgroundProcessDoesNotHoldExec(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	h, c := sandbox(t, p, spec())
	root := filepath.Join(dataDir, "sb", h.SandboxID, "root")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c",
		"(sleep 1; echo late > /workspace/late.txt) >/dev/null 2>&1 </dev/null & echo started; exit 3"}, TimeoutMS: 30000}, &out, &out)
	el := time.Since(start)
	if err != nil || res.TimedOut || res.ExitCode != 3 || out.String() != "started\n" {
		t.Fatalf("exec = %+v %q, %v; want exit 3 and \"started\"", res, out.String(), err)
	}
	if el > 900*time.Millisecond {
		t.Errorf("exec with a background child took %v; want it back before the child's 1s sleep ends", el)
	}
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err = os.ReadFile(filepath.Join(root, "workspace", "late.txt")); err == nil {
			break
		}
	}
	if string(b) != "late\n" {
		t.Fatalf("background write in the sandbox = %q, %v; want \"late\"", b, err)
	}
	if _, err := os.Stat("/workspace/late.txt"); err == nil {
		t.Errorf("the background process wrote to the host's /workspace: it escaped proot")
	}
	// Output left on the exec's pipes by a background child neither holds
	// the exec nor blocks the child.
	out.Reset()
	start = time.Now()
	res, err = c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "(for i in $(seq 1 2000); do echo line$i; done; sleep 2) & echo first"}, TimeoutMS: 30000}, &out, io.Discard)
	if err != nil || res.ExitCode != 0 || !strings.HasPrefix(out.String(), "first\n") && !strings.Contains(out.String(), "first\n") {
		t.Fatalf("exec = %+v %q, %v", res, out.String(), err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("exec whose child holds stdout took %v; want about waitDelay", el)
	}
}

// findPids returns host pids whose command line is exactly cmd and that
// belong to sandbox id (by cgroup when cgroups are in use, else all).
func findPids(t *testing.T, cmd, id string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ") != cmd {
			continue
		}
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if strings.Contains(string(cg), "stacyvm-proot") && !strings.Contains(string(cg), id) {
			continue // another sandbox's
		}
		out = append(out, pid)
	}
	return out
}

// TestCreate_BadInput: each bad spec is a typed error and leaves nothing.
func TestCreate_BadInput(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		mut  func(*provider.Spec)
		want errs.Class
	}{
		"BridgeNetwork": {func(s *provider.Spec) { s.Network = provider.NetworkBridge }, errs.Invalid},
		"NoneNetwork":   {func(s *provider.Spec) { s.Network = provider.NetworkNone }, errs.Invalid},
		"MissingImage":  {func(s *provider.Spec) { s.Image = "stacyvm/no-such-image:nope" }, errs.Invalid},
		"NoImage":       {func(s *provider.Spec) { s.Image = "" }, errs.Invalid},
		"BadID":         {func(s *provider.Spec) { s.SandboxID = "../x" }, errs.Invalid},
		"ProotEnv":      {func(s *provider.Spec) { s.Env = map[string]string{"PROOT_NO_SECCOMP": "1"} }, errs.Invalid},
		"TinyMemory":    {func(s *provider.Spec) { s.MemoryMB = 4 }, errs.Invalid},
	} {
		t.Run(name, func(t *testing.T) {
			sp := spec()
			tc.mut(&sp)
			_, err := p.Create(ctx, sp)
			if errs.ClassOf(err) != tc.want {
				t.Errorf("Create = %v, want %v", err, tc.want)
			}
		})
	}
	ents, _ := os.ReadDir(filepath.Join(dataDir, "sb"))
	if len(ents) != 0 {
		t.Errorf("failed creates left %d sandbox dirs", len(ents))
	}
}

// TestMissingProotIsUnavailable: a provider whose binary is absent is
// unhealthy and refuses creates with Unavailable at once.
func TestMissingProotIsUnavailable(t *testing.T) {
	if testEnv.skip != "" {
		t.Skip(testEnv.skip)
	}
	p, err := proot.New(context.Background(), proot.Config{
		DataDir: shortTempDir(t), AgentPath: testEnv.agentPath, ServerID: "x", Binary: "proot-not-installed-here",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Health(context.Background()); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("Health = %v, want Unavailable", err)
	}
	start := time.Now()
	if _, err := p.Create(context.Background(), spec()); errs.ClassOf(err) != errs.Unavailable || time.Since(start) > time.Second {
		t.Errorf("Create = %v after %v, want Unavailable at once", err, time.Since(start))
	}
	checks := proot.HostChecks(context.Background(), proot.Config{Binary: "proot-not-installed-here"})
	if len(checks) != 1 || checks[0].Status != provider.CheckNotInstalled {
		t.Errorf("HostChecks = %+v, want one NOT INSTALLED", checks)
	}
}

func TestNew_ValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]proot.Config{
		"NoServerID":     {DataDir: "/tmp/x", AgentPath: "/bin/true"},
		"RelativeData":   {DataDir: "x", AgentPath: "/bin/true", ServerID: "s"},
		"RelativeAgent":  {DataDir: "/tmp/x", AgentPath: "agent", ServerID: "s"},
		"DataDirTooLong": {DataDir: "/" + strings.Repeat("d", 80), AgentPath: "/bin/true", ServerID: "s"},
	} {
		if _, err := proot.New(context.Background(), cfg, nil); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("%s: New = %v, want Invalid", name, err)
		}
	}
}

// TestRemoveAll: sandboxes left running under a data dir (a server that
// stopped without destroying them) are killed, unmounted and removed.
func TestRemoveAll(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newProvider(t, dataDir)
	ctx := context.Background()
	h, err := p.Create(ctx, spec())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.ReadFile(filepath.Join(dataDir, "sb", h.SandboxID, "handle.json"))
	if err := proot.RemoveAll(ctx, dataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "sb", h.SandboxID)); !os.IsNotExist(err) {
		t.Errorf("sandbox dir still there: %v", err)
	}
	if s, err := p.Inspect(ctx, h); err != nil || s.State != provider.RuntimeMissing {
		t.Errorf("Inspect after RemoveAll = %+v, %v; want missing", s, err)
	}
	var state struct{ PID int }
	if err := json.Unmarshal(st, &state); err != nil || state.PID <= 1 {
		t.Fatalf("no pid in state %s", st)
	}
	time.Sleep(50 * time.Millisecond)
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(state.PID) + "/stat"); err == nil && !strings.Contains(string(b), ") Z") {
		t.Errorf("agent %d survived RemoveAll", state.PID)
	}
	if mounts, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(mounts), dataDir) {
		t.Errorf("a mount under %s survived RemoveAll", dataDir)
	}
}
