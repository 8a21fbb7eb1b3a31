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
