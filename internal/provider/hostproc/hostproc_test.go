package hostproc_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// A session of a real shell and its child: KillSession kills both,
// WaitGone returns once the leader is reaped, ExitCode reports the signal.
func TestKillSessionAndReap(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr := hostproc.Reap(cmd)
	if got := pr.ExitCode(); got != -1 {
		t.Fatalf("ExitCode while running = %d, want -1", got)
	}
	st, ok := hostproc.ProcStat(pr.PID)
	if !ok || st.Session != pr.PID || st.State == "Z" {
		t.Fatalf("ProcStat(leader) = %+v, %v; want a live session leader", st, ok)
	}
	if args, ok := hostproc.AgentArgs(pr.PID, "/bin/sh"); !ok || args[1] != "-c" {
		t.Fatalf("AgentArgs = %q, %v", args, ok)
	}
	if _, ok := hostproc.AgentArgs(pr.PID, "/usr/bin/other"); ok {
		t.Fatal("AgentArgs accepted another binary")
	}
	var members []int
	deadline := time.Now().Add(5 * time.Second)
	for len(members) < 2 && time.Now().Before(deadline) {
		members = sessionMembers(pr.PID)
		time.Sleep(10 * time.Millisecond)
	}
	if len(members) < 2 {
		t.Fatalf("session %d has members %v; want the shell and its sleep", pr.PID, members)
	}
	hostproc.KillSession(pr.PID)
	select {
	case <-pr.Done:
	case <-time.After(5 * time.Second):
		t.Fatal("leader not reaped after KillSession")
	}
	if got := pr.ExitCode(); got != -1 { // killed by a signal: Go reports -1
		t.Errorf("ExitCode after SIGKILL = %d, want -1", got)
	}
	for _, pid := range members {
		hostproc.WaitGone(context.Background(), pid)
		if st, ok := hostproc.ProcStat(pid); ok && st.State != "Z" {
			t.Errorf("session member %d survives: %+v", pid, st)
		}
	}
	var nilProc *hostproc.Proc
	if nilProc.ExitCode() != -1 {
		t.Error("nil Proc ExitCode != -1")
	}
}

func sessionMembers(sid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := hostproc.ProcStat(pid); ok && st.Session == sid && st.State != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func TestProcStatMissing(t *testing.T) {
	if _, ok := hostproc.ProcStat(1 << 30); ok {
		t.Fatal("ProcStat of a pid that cannot exist succeeded")
	}
	hostproc.KillSession(0) // never signals pid 0's group or init
	hostproc.KillSession(1)
}

// WaitReady reports an agent that exits during start with its exit code
// and the last lines of its console.
func TestWaitReadyAgentExits(t *testing.T) {
	dir := t.TempDir()
	console, err := hostproc.OpenConsole(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "echo boom; exit 3")
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	console.Close()
	pr := hostproc.Reap(cmd)
	ac := agent.NewUnixClient(filepath.Join(dir, "none.sock"))
	defer ac.Close()
	err = hostproc.WaitReady(context.Background(), ac, pr, filepath.Join(dir, hostproc.ConsoleLog), "test agent")
	if errs.ClassOf(err) != errs.Internal || !strings.Contains(err.Error(), "test agent exited during start (exit code 3): boom") {
		t.Fatalf("WaitReady = %v", err)
	}
}

func TestWaitReadyTimesOutOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr := hostproc.Reap(cmd)
	defer func() { cmd.Process.Kill(); <-pr.Done }()
	ac := agent.NewUnixClient(filepath.Join(t.TempDir(), "none.sock"))
	defer ac.Close()
	err := hostproc.WaitReady(ctx, ac, pr, "/nonexistent", "test agent")
	if errs.ClassOf(err) != errs.Timeout {
		t.Fatalf("WaitReady = %v, want Timeout", err)
	}
}

func TestTails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, hostproc.ConsoleLog)
	if _, err := hostproc.TailFile(path, 5); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("TailFile(missing) err = %v", err)
	}
	if _, err := hostproc.Logs(dir, "sb1", 5); errs.ClassOf(err) != errs.NotFound {
		t.Fatalf("Logs(missing) err = %v", err)
	}
	if got := hostproc.TailLines(path, 5); got != nil {
		t.Fatalf("TailLines(missing) = %q", got)
	}
	os.WriteFile(path, nil, 0o600)
	if got, err := hostproc.TailFile(path, 5); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("TailFile(empty) = %q, %v", got, err)
	}
	// More than the 1 MiB window: only the end is read.
	big := bytes.Repeat([]byte("x\r\n"), 600_000)
	big = append(big, "a\r\nb\r\nc\r\n\n"...)
	os.WriteFile(path, big, 0o600)
	if got, _ := hostproc.TailFile(path, 2); !slices.Equal(got, []string{"b\r", "c\r"}) {
		t.Errorf("TailFile = %q", got)
	}
	if got := hostproc.TailLines(path, 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("TailLines = %q", got)
	}
	if got, _ := hostproc.Logs(dir, "sb1", 0); len(got) != 100 {
		t.Errorf("Logs(lines 0) returned %d lines, want the default 100", len(got))
	}
}

type st struct {
	Server    string `json:"server_id"`
	SandboxID string `json:"sandbox_id"`
	PID       int    `json:"pid"`
}

func (s st) Owner() (string, string) { return s.Server, s.SandboxID }

func TestStateAndList(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"one", "two", "bad", "-skip"} {
		os.Mkdir(filepath.Join(dir, id), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	for _, id := range []string{"one", "two"} {
		if err := hostproc.WriteState(filepath.Join(dir, id, "state.json"), st{Server: "me", SandboxID: id, PID: 7}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "one", "state.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary state file left behind: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad", "state.json"), []byte("{"), 0o600)
	var got st
	if err := hostproc.ReadState(filepath.Join(dir, "one", "state.json"), &got, "test state"); err != nil || got != (st{"me", "one", 7}) {
		t.Fatalf("ReadState = %+v, %v", got, err)
	}
	if err := hostproc.ReadState(filepath.Join(dir, "bad", "state.json"), &got, "test state for bad"); errs.ClassOf(err) != errs.Internal || !strings.Contains(err.Error(), "corrupt test state for bad") {
		t.Fatalf("ReadState(corrupt) = %v", err)
	}
	if err := hostproc.ReadState(filepath.Join(dir, "nope", "state.json"), &got, "x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadState(missing) = %v", err)
	}
	os.Mkdir(filepath.Join(dir, "other"), 0o700)
	hostproc.WriteState(filepath.Join(dir, "other", "state.json"), st{Server: "another", SandboxID: "other"})
	os.Mkdir(filepath.Join(dir, "moved"), 0o700)
	hostproc.WriteState(filepath.Join(dir, "moved", "state.json"), st{Server: "me", SandboxID: "one"})
	read := func(id string) (st, error) {
		var s st
		err := hostproc.ReadState(filepath.Join(dir, id, "state.json"), &s, "x")
		return s, err
	}
	handle := func(s st) provider.Handle { return provider.Handle{SandboxID: s.SandboxID} }
	valid := func(id string) error { return provider.ValidSandboxID(id, 40) }
	hs, err := hostproc.List(dir, "test", "me", valid, read, handle)
	if err != nil || len(hs) != 2 || hs[0].SandboxID != "one" || hs[1].SandboxID != "two" {
		t.Fatalf("List = %+v, %v; want one and two only", hs, err)
	}
	if _, err := hostproc.List(filepath.Join(dir, "missing"), "test", "me", valid, read, handle); errs.ClassOf(err) != errs.Unavailable || !strings.Contains(err.Error(), "read test data dir") {
		t.Fatalf("List(missing dir) = %v", err)
	}
}

func TestClients(t *testing.T) {
	var cs hostproc.Clients
	dir := t.TempDir()
	if _, err := cs.Unix("sb", filepath.Join(dir, "agent.sock")); errs.ClassOf(err) != errs.NotFound {
		t.Fatalf("Unix(no socket) = %v, want NotFound", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	os.WriteFile(sock, nil, 0o600) // Unix only checks that the path exists
	c1, err := cs.Unix("sb", sock)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := cs.Unix("sb", sock); c2 != c1 {
		t.Fatal("Unix did not return the cached client")
	}
	c3 := agent.NewUnixClient(sock)
	cs.Put("sb", c3)
	if c, _ := cs.Unix("sb", sock); c != c3 {
		t.Fatal("Put did not replace the client")
	}
	cs.Drop("sb")
	os.Remove(sock)
	if _, err := cs.Unix("sb", sock); errs.ClassOf(err) != errs.NotFound {
		t.Fatalf("Unix after Drop = %v, want NotFound", err)
	}
	cs.Put("other", agent.NewUnixClient(sock))
	cs.CloseAll()
	if _, err := cs.Unix("other", sock); errs.ClassOf(err) != errs.NotFound {
		t.Fatalf("Unix after CloseAll = %v, want NotFound", err)
	}
}

func TestLimited(t *testing.T) {
	var b bytes.Buffer
	l := &hostproc.Limited{W: &b, N: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.String() != "abcde" {
		t.Fatalf("kept %q, want abcde", b.String())
	}
}
