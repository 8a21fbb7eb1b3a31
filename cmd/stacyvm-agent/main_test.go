package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// buildAgent compiles the static agent binary once per test.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stacyvm-agent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ag") // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitPing polls the agent until it answers.
func waitPing(t *testing.T, c *agent.Client, exited <-chan struct{}) agent.Info {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatal("agent exited before answering")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Ping(ctx)
		cancel()
		if err == nil {
			return info
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("agent never answered ping")
	return agent.Info{}
}

func startBinary(t *testing.T, argv []string) (*exec.Cmd, <-chan struct{}, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Closed, not sent on, so every waiter (and the cleanup) sees it.
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return cmd, exited, &logs
}

func waitExit(t *testing.T, exited <-chan struct{}, within time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-exited:
		if d := time.Since(start); d > within {
			t.Errorf("agent exited after %v, want < %v", d, within)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("agent did not exit within 5s")
	}
}

func TestAgent_ServesOnUnixSocketAndStopsOnSIGTERM(t *testing.T) {
	bin := buildAgent(t)
	root, dir := t.TempDir(), sockDir(t)
	sock := filepath.Join(dir, "agent.sock")
	// A stale socket from a previous run must not prevent startup.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	cmd, exited, logs := startBinary(t, []string{bin, "--listen", "unix://" + sock, "--root", root})
	c := agent.NewUnixClient(sock)
	defer c.Close()
	info := waitPing(t, c, exited)
	if info.PID != cmd.Process.Pid || info.Root != root || info.ProtocolVersion != agent.ProtocolVersion {
		t.Errorf("Ping = %+v, want pid %d root %s", info, cmd.Process.Pid, root)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, %v; want 0660", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "workspace")); err != nil || !fi.IsDir() {
		t.Errorf("default workdir not created: %v", err)
	}
	var out bytes.Buffer
	res, err := c.Exec(ctxT(t), agent.ExecRequest{Argv: []string{"pwd"}, Env: map[string]string{"SECRET": "hunter2"}}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.String() != filepath.Join(root, "workspace")+"\n" {
		t.Errorf("pwd = %q, %+v, %v", out.String(), res, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, exited, time.Second)
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("agent log holds an env secret:\n%s", logs.String())
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", cmd.ProcessState.ExitCode())
	}
}

func TestAgent_FlagErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"--listen", "http://x"}, {"--listen", "unix://"}, {"--bogus"}} {
		var stderr bytes.Buffer
		if code := run(args, &bytes.Buffer{}, &stderr); code == 0 {
			t.Errorf("run(%q) = 0, want failure", args)
		}
	}
	var stdout bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &bytes.Buffer{}); code != 0 || strings.TrimSpace(stdout.String()) != version {
		t.Errorf("--version = %d %q", code, stdout.String())
	}
}

// childrenOf lists the pids whose parent is ppid (host pid namespace).
func childrenOf(t *testing.T, ppid int) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(st, ')')
		f := strings.Fields(string(st[i+1:])) // state, ppid, ...
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// startInit runs the agent as PID 1 of a new pid namespace and returns the
// unshare command, the init's host pid and a client.
func startInit(t *testing.T, bin string) (<-chan struct{}, int, *agent.Client) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	root, dir := t.TempDir(), sockDir(t)
	sock := filepath.Join(dir, "agent.sock")
	cmd, exited, _ := startBinary(t, []string{"unshare", "--pid", "--fork", "--mount-proc", bin, "--listen", "unix://" + sock, "--root", root})
	c := agent.NewUnixClient(sock)
	t.Cleanup(c.Close)
	info := waitPing(t, c, exited)
	if info.PID == 1 {
		t.Errorf("server answered as PID 1; want it re-executed as a child of init")
	}
	kids := childrenOf(t, cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("unshare children = %v, want exactly the agent init", kids)
	}
	return exited, kids[0], c
}

func TestAgent_PID1ReapsOrphansAndStopsFast(t *testing.T) {
	bin := buildAgent(t)
	exited, initPid, c := startInit(t, bin)
	ctx := ctxT(t)
	// The background sleep is orphaned when sh exits, reparented to the
	// agent init, and becomes a zombie unless init reaps it.
	if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", "sleep 0.1 >/dev/null 2>&1 & exit 0"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	var stat bytes.Buffer
	if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", "cat /proc/[0-9]*/stat"}}, &stat, nil); err != nil {
		t.Fatal(err)
	}
	procs := 0
	for _, line := range strings.Split(strings.TrimSpace(stat.String()), "\n") {
		i := strings.LastIndexByte(line, ')')
		if i < 0 || len(line) < i+3 {
			continue
		}
		procs++
		if line[i+2] == 'Z' {
			t.Errorf("zombie inside the agent's namespace: %s", line)
		}
	}
	if procs < 2 {
		t.Errorf("saw %d processes in the namespace, want at least init and the server:\n%s", procs, stat.String())
	}
	syscall.Kill(initPid, syscall.SIGTERM)
	waitExit(t, exited, time.Second)
}

func TestAgent_PID1ExitsPromptlyWhenServerLingers(t *testing.T) {
	bin := buildAgent(t)
	exited, initPid, _ := startInit(t, bin)
	server := childrenOf(t, initPid)
	if len(server) != 1 {
		t.Fatalf("init children = %v, want the server", server)
	}
	// A stopped server cannot act on the forwarded SIGTERM.
	syscall.Kill(server[0], syscall.SIGSTOP)
	syscall.Kill(initPid, syscall.SIGTERM)
	waitExit(t, exited, 500*time.Millisecond)
}
