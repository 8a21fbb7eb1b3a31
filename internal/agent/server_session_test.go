package agent_test

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// syncBuf is an output sink read while it is written.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls buf until it contains want after the first skip bytes.
func waitFor(t *testing.T, buf *syncBuf, skip int, want string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s := buf.String()
		if i := strings.Index(s[min(skip, len(s)):], want); i >= 0 {
			return skip + i + len(want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("output never showed %q; got %q", want, buf.String())
	return 0
}

type sessionRun struct {
	sess *agent.Session
	out  *syncBuf
	errb *syncBuf
	done chan struct{}
	res  agent.ExecResult
	err  error
}

func openSession(t *testing.T, a *testAgent, spec agent.ProcessSpec) *sessionRun {
	t.Helper()
	sess, err := a.client.OpenSession(ctxT(t), spec)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	r := &sessionRun{sess: sess, out: &syncBuf{}, errb: &syncBuf{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.res, r.err = sess.Wait(r.out, r.errb)
	}()
	t.Cleanup(func() { sess.Close(); <-r.done })
	return r
}

func (r *sessionRun) wait(t *testing.T) agent.ExecResult {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("session did not end; output %q", r.out.String())
	}
	if r.err != nil {
		t.Fatalf("Wait: %v", r.err)
	}
	return r.res
}

func TestSession_PTYShellEchoResizeInterruptExit(t *testing.T) {
	a := startAgent(t)
	r := openSession(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-i"}}, TTY: true, Cols: 80, Rows: 24})
	if r.sess.PID <= 0 {
		t.Errorf("PID = %d, want the process's pid", r.sess.PID)
	}
	send := func(s string) {
		if err := r.sess.Stdin([]byte(s)); err != nil {
			t.Fatalf("Stdin: %v", err)
		}
	}
	send("echo hi-$((40+2)); tty; echo TERM=$TERM\n")
	n := waitFor(t, r.out, 0, "hi-42")
	n = waitFor(t, r.out, n, "/dev/pts/")
	n = waitFor(t, r.out, n, "TERM=xterm-256color")
	if err := r.sess.Resize(101, 33); err != nil {
		t.Fatal(err)
	}
	send("stty size\n")
	n = waitFor(t, r.out, n, "33 101")
	// Ctrl-C reaches the foreground job (sleep), not the shell.
	send("sleep 30; echo after-sleep-$?\n")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := r.sess.Signal("SIGINT"); err != nil {
		t.Fatal(err)
	}
	send("echo still-alive-$((2+3))\n")
	n = waitFor(t, r.out, n, "still-alive-5")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("interrupt took %s", d)
	}
	send("exit 7\n")
	if res := r.wait(t); res.ExitCode != 7 {
		t.Errorf("exit code = %d, want 7; output %q", res.ExitCode, r.out.String()[n:])
	}
}

func TestSession_PipesStdinEOFAndStderr(t *testing.T) {
	a := startAgent(t)
	r := openSession(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "cat; echo err-line >&2; exit 3"}}})
	if err := r.sess.Stdin([]byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.out, 0, "abc\n")
	if err := r.sess.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	res := r.wait(t)
	if res.ExitCode != 3 || r.out.String() != "abc\n" || r.errb.String() != "err-line\n" {
		t.Errorf("got exit %d stdout %q stderr %q, want 3 %q %q", res.ExitCode, r.out.String(), r.errb.String(), "abc\n", "err-line\n")
	}
	if err := r.sess.Resize(10, 10); err != nil {
		t.Logf("resize after exit: %v", err) // allowed to fail: the connection is gone
	}
}

func TestSession_CloseKillsWholeSession(t *testing.T) {
	a := startAgent(t)
	// The background sleep moves to its own process group: only the
	// session-wide kill reaches it.
	r := openSession(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "set -m; sleep 300 & echo bg=$!; wait"}}})
	waitFor(t, r.out, 0, "\n")
	line := strings.TrimSpace(r.out.String())
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "bg="))
	if err != nil {
		t.Fatalf("bad pid line %q", line)
	}
	r.sess.Close()
	<-r.done
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("background process %d still alive after the session closed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func TestSession_TimeoutKills(t *testing.T) {
	a := startAgent(t)
	r := openSession(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"sleep", "30"}, TimeoutMS: 200}})
	if res := r.wait(t); !res.TimedOut || res.ExitCode != -1 {
		t.Errorf("result %+v, want timed out with exit -1", res)
	}
}

func TestSession_BadRequestsFailBeforeUpgrade(t *testing.T) {
	a := startAgent(t)
	for _, tc := range []struct {
		name string
		spec agent.ProcessSpec
	}{
		{"no argv", agent.ProcessSpec{}},
		{"unknown program", agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"no-such-program-xyz"}}}},
		{"relative workdir", agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"true"}, Workdir: "rel"}}},
		{"negative timeout", agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"true"}, TimeoutMS: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := a.client.OpenSession(ctxT(t), tc.spec)
			if err == nil {
				sess.Close()
				t.Fatal("OpenSession succeeded, want an Invalid error")
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("error %v has class %s, want Invalid", err, errs.ClassOf(err))
			}
		})
	}
	if _, err := agent.ParseSignal("SIGNOPE"); !errs.Is(err, errs.Invalid) {
		t.Errorf("ParseSignal(SIGNOPE) = %v, want Invalid", err)
	}
	for _, s := range []string{"SIGINT", "int", "2", " sigterm "} {
		if _, err := agent.ParseSignal(s); err != nil {
			t.Errorf("ParseSignal(%q) = %v", s, err)
		}
	}
}
