package agent_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// TestExec_WrapperRunsEveryExec: with ExecWrapper set, each exec runs as
// `WRAPPER WORKDIR ARGV...` (the proot provider's per-exec proot), with
// the sandbox's workdir and the argv untouched.
func TestExec_WrapperRunsEveryExec(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "wrap")
	script := "#!/bin/sh\nprintf 'wd=%s' \"$1\"; shift; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo\nexit 7\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "agw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	srv, err := agent.NewServer(agent.ServerOptions{Root: root, DefaultWorkdir: "/workspace", ExecWrapper: wrapper,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(sockDir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := agent.NewUnixClient(filepath.Join(sockDir, "a.sock"))
	defer func() { c.Close(); cancel(); <-done; srv.Close() }()

	var out bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"no-such-program-on-the-host", "a b", "$X"}}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "wd=/workspace [no-such-program-on-the-host] [a b] [$X]\n"; out.String() != want || res.ExitCode != 7 {
		t.Errorf("wrapped exec = %q (exit %d), want %q (exit 7)", out.String(), res.ExitCode, want)
	}
	if _, err := agent.NewServer(agent.ServerOptions{Root: root, ExecWrapper: "relative/wrap"}); errs.ClassOf(err) != errs.Invalid {
		t.Errorf("relative wrapper: %v, want Invalid", err)
	}
}

// TestExec_WrapperStatusPipeEndsTheExec: a wrapper that reports its
// command's exit code on fd 3 and then lingers (proot waiting for a
// background process) ends the exec with that code after waitDelay; output
// it writes afterwards is dropped, never blocking it.
func TestExec_WrapperStatusPipeEndsTheExec(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "wrap")
	marker := filepath.Join(t.TempDir(), "lingered")
	script := "#!/bin/sh\necho before\necho 5 >&3\nsleep 1\nfor i in $(seq 1 5000); do echo after$i; done\ntouch " + marker + "\nexit 9\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "agw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	srv, err := agent.NewServer(agent.ServerOptions{Root: root, DefaultWorkdir: "/workspace", ExecWrapper: wrapper,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(sockDir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := agent.NewUnixClient(filepath.Join(sockDir, "a.sock"))
	defer func() { c.Close(); cancel(); <-done; srv.Close() }()

	var out bytes.Buffer
	start := time.Now()
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"true"}}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("exec took %v; want it to end about 200ms after the report, not when the wrapper exits", el)
	}
	if out.String() != "before\n" || res.ExitCode != 5 || res.TimedOut {
		t.Errorf("exec = %q %+v, want \"before\\n\" and the reported exit 5", out.String(), res)
	}
	// The lingering wrapper goes on, its late output dropped, and finishes.
	lingered := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(marker); err == nil {
				os.Remove(marker)
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the wrapper never finished after the exec returned: its output blocked it")
			}
		}
	}
	lingered()
	// The next exec on the same agent is unaffected.
	out.Reset()
	if res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"true"}}, &out, io.Discard); err != nil || res.ExitCode != 5 {
		t.Errorf("second exec = %+v, %v", res, err)
	}
	lingered()
	time.Sleep(100 * time.Millisecond) // the late Wait reaps the wrapper
}
