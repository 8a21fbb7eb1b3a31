package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testAgent is a real Server on a unix socket, reached only through Client.
type testAgent struct {
	root   string // host directory served as "/"
	client *agent.Client
}

func startAgent(t *testing.T) *testAgent {
	t.Helper()
	return startAgentAt(t, t.TempDir())
}

// startAgentAt serves root as the sandbox's "/"; root "/" is the real-sandbox mode.
func startAgentAt(t *testing.T, root string) *testAgent {
	t.Helper()
	workdir := "/" // real-sandbox mode: never create directories on the host's /
	if root != "/" {
		workdir = "/workspace"
		if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "ag")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "a.sock")
	srv, err := agent.NewServer(agent.ServerOptions{
		Root:           root,
		DefaultWorkdir: workdir,
		Version:        "test",
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := agent.NewUnixClient(sock)
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		srv.Close()
	})
	return &testAgent{root: root, client: c}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type execOut struct {
	res            agent.ExecResult
	stdout, stderr string
	err            error
}

func (a *testAgent) exec(t *testing.T, req agent.ExecRequest) execOut {
	t.Helper()
	var so, se bytes.Buffer
	res, err := a.client.Exec(ctxT(t), req, &so, &se)
	return execOut{res, so.String(), se.String(), err}
}

func TestPing_ReportsIdentity(t *testing.T) {
	a := startAgent(t)
	info, err := a.client.Ping(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "test" || info.ProtocolVersion != agent.ProtocolVersion || info.PID != os.Getpid() || info.Root != a.root {
		t.Errorf("Ping = %+v, want version test, protocol %d, pid %d, root %s", info, agent.ProtocolVersion, os.Getpid(), a.root)
	}
}

func TestExec_Results(t *testing.T) {
	a := startAgent(t)
	if err := os.MkdirAll(filepath.Join(a.root, "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		req        agent.ExecRequest
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"argv is literal, no shell", agent.ExecRequest{Argv: []string{"echo", "$HOME", "a b", "; rm -rf /"}}, 0, "$HOME a b ; rm -rf /\n", ""},
		{"shell script via sh -c", agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "for i in 1 2 3; do printf $i; done"}}, 0, "123", ""},
		{"exit code 0", agent.ExecRequest{Argv: []string{"true"}}, 0, "", ""},
		{"exit code 3", agent.ExecRequest{Argv: []string{"sh", "-c", "exit 3"}}, 3, "", ""},
		{"killed by signal is 128+N", agent.ExecRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}}, 128 + 15, "", ""},
		{"stderr is separate", agent.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, 0, "out\n", "err\n"},
		{"env overlays the agent's", agent.ExecRequest{Argv: []string{"sh", "-c", `printf "%s" "$FOO"`}, Env: map[string]string{"FOO": "bar baz"}}, 0, "bar baz", ""},
		{"env PATH is used for lookup", agent.ExecRequest{Argv: []string{"sh", "-c", `printf "%s" "$PATH"`}, Env: map[string]string{"PATH": "/bin:/usr/bin"}}, 0, "/bin:/usr/bin", ""},
		{"per-stream order with interleaving", agent.ExecRequest{Argv: []string{"sh", "-c", "printf a; printf b >&2; printf c"}}, 0, "ac", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.exec(t, tt.req)
			if got.err != nil {
				t.Fatalf("Exec: %v", got.err)
			}
			if got.res.ExitCode != tt.wantCode || got.res.TimedOut {
				t.Errorf("result = %+v, want exit %d, not timed out", got.res, tt.wantCode)
			}
			if got.stdout != tt.wantStdout || got.stderr != tt.wantStderr {
				t.Errorf("stdout %q stderr %q, want %q %q", got.stdout, got.stderr, tt.wantStdout, tt.wantStderr)
			}
			if got.res.DurationNS <= 0 {
				t.Errorf("DurationNS = %d, want > 0", got.res.DurationNS)
			}
		})
	}
}

func TestExec_WorkdirIsInsideRoot(t *testing.T) {
	a := startAgent(t)
	if err := os.MkdirAll(filepath.Join(a.root, "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ workdir, want string }{
		{"", filepath.Join(a.root, "workspace")},
		{"/sub/dir", filepath.Join(a.root, "sub", "dir")},
		{"/../sub/./dir/", filepath.Join(a.root, "sub", "dir")},
	} {
		got := a.exec(t, agent.ExecRequest{Argv: []string{"pwd"}, Workdir: tt.workdir})
		if got.err != nil || got.stdout != tt.want+"\n" {
			t.Errorf("pwd in %q = %q, %v; want %q", tt.workdir, got.stdout, got.err, tt.want)
		}
	}
}

func TestExec_RejectsBadRequests(t *testing.T) {
	a := startAgent(t)
	tests := []struct {
		name    string
		req     agent.ExecRequest
		wantMsg string
	}{
		{"executable not found", agent.ExecRequest{Argv: []string{"nosuchcmd"}}, `exec: "nosuchcmd": executable file not found in $PATH`},
		{"missing absolute program", agent.ExecRequest{Argv: []string{"/no/such/prog"}}, `exec: "/no/such/prog": no such file or directory`},
		{"missing workdir", agent.ExecRequest{Argv: []string{"true"}, Workdir: "/nope"}, "workdir /nope does not exist"},
		{"relative workdir", agent.ExecRequest{Argv: []string{"true"}, Workdir: "rel"}, "must be an absolute path"},
		{"empty argv", agent.ExecRequest{}, "argv must name a program"},
		{"bad env name", agent.ExecRequest{Argv: []string{"true"}, Env: map[string]string{"A=B": "c"}}, "not a valid variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.exec(t, tt.req)
			if errs.ClassOf(got.err) != errs.Invalid || !strings.Contains(got.err.Error(), tt.wantMsg) {
				t.Errorf("err = %v (class %v), want Invalid containing %q", got.err, errs.ClassOf(got.err), tt.wantMsg)
			}
		})
	}
}

func TestExec_BinaryOutputRoundTrips(t *testing.T) {
	a := startAgent(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(a.root, "bin.dat"), all, 0o644); err != nil {
		t.Fatal(err)
	}
	got := a.exec(t, agent.ExecRequest{Argv: []string{"cat", filepath.Join(a.root, "bin.dat")}})
	if got.err != nil || got.stdout != string(all) {
		t.Errorf("cat of 256 byte values: err %v, got %d bytes, equal=%v", got.err, len(got.stdout), got.stdout == string(all))
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestExec_TenMegabytesStream(t *testing.T) {
	a := startAgent(t)
	const size = 10 << 20
	var out countingWriter
	res, err := a.client.Exec(ctxT(t), agent.ExecRequest{Argv: []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.n != size {
		t.Errorf("10 MB exec: res %+v err %v bytes %d, want exit 0 and %d bytes", res, err, out.n, size)
	}
}

// waitGone polls until pid no longer exists (or is a zombie about to be reaped).
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d still alive after %v", pid, within)
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

func TestExec_TimeoutKillsProcessGroup(t *testing.T) {
	a := startAgent(t)
	pidfile := filepath.Join(a.root, "pid")
	start := time.Now()
	got := a.exec(t, agent.ExecRequest{
		Argv:      []string{"sh", "-c", "sleep 300 & echo $! > " + pidfile + "; sleep 300"},
		TimeoutMS: 300,
	})
	elapsed := time.Since(start)
	if got.err != nil || !got.res.TimedOut || got.res.ExitCode != -1 {
		t.Errorf("result %+v err %v, want TimedOut with exit -1", got.res, got.err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("timed-out exec returned after %v, want < 2s", elapsed)
	}
	waitGone(t, readPid(t, pidfile), time.Second)
}

func TestExec_CancelKillsProcessGroup(t *testing.T) {
	a := startAgent(t)
	pidfile := filepath.Join(a.root, "pid")
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() {
		_, err := a.client.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", "sleep 300 & echo $! > " + pidfile + "; sleep 300"}}, nil, nil)
		done <- err
	}()
	pid := readPid(t, pidfile)
	cancel()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Exec err = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled Exec did not return within 2s")
	}
	waitGone(t, pid, time.Second)
}

func TestExec_BackgroundChildHoldingStdoutDoesNotHang(t *testing.T) {
	a := startAgent(t)
	pidfile := filepath.Join(a.root, "pid")
	start := time.Now()
	got := a.exec(t, agent.ExecRequest{Argv: []string{"sh", "-c", "sleep 30 & echo $! > " + pidfile + "; echo done"}})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("exec returned after %v, want promptly", elapsed)
	}
	if got.err != nil || got.res.ExitCode != 0 || got.stdout != "done\n" {
		t.Errorf("got %+v, want exit 0 and stdout done", got)
	}
	syscall.Kill(readPid(t, pidfile), syscall.SIGKILL)
}

func TestExec_ConcurrentCallsDoNotWaitOnEachOther(t *testing.T) {
	a := startAgent(t)
	const n = 8
	start := time.Now()
	errc := make(chan error, n)
	for range n {
		go func() {
			_, err := a.client.Exec(ctxT(t), agent.ExecRequest{Argv: []string{"sleep", "0.3"}}, nil, nil)
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("%d concurrent 0.3s execs took %v", n, elapsed)
	}
}
