package sandbox_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// lockedBuf is an output sink read while it is written.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProcesses_LifecycleAndTenancy runs a background process and an
// interactive session through the service (mock provider, real agent), and
// checks that another tenant sees neither the sandbox nor its processes.
func TestProcesses_LifecycleAndTenancy(t *testing.T) {
	_, svc := govEnv(t, 0)
	alice := as(auth.RoleOperator, "acme", "alice")
	mallory := as(auth.RoleOperator, "evil", "mallory")
	sb, err := svc.Create(alice, sandbox.CreateRequest{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	p, err := svc.StartProcess(alice, sb.ID, sandbox.ProcessRequest{Command: "echo out; echo err >&2; exit 3"})
	if err != nil || p.ID == "" {
		t.Fatalf("StartProcess = %+v, %v", p, err)
	}
	var out bytes.Buffer
	res, err := svc.ProcessOutput(alice, sb.ID, p.ID, 0, true, func(c agent.OutputChunk) error { out.Write(c.Data); return nil })
	if err != nil || res == nil || res.ExitCode != 3 || !strings.Contains(out.String(), "out\n") || !strings.Contains(out.String(), "err\n") {
		t.Fatalf("output %q, result %+v, %v", out.String(), res, err)
	}

	sess, err := svc.OpenSession(alice, sb.ID, sandbox.ProcessRequest{Command: "/bin/sh", Mode: sandbox.ModeArgv, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	term := &lockedBuf{}
	done := make(chan sandbox.ExecResult, 1)
	go func() { r, _ := sess.Wait(term, term); done <- r }()
	if err := sess.Stdin([]byte("echo v-$((3*3)); exit 5\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.ExitCode != 5 || !strings.Contains(term.String(), "v-9") {
			t.Errorf("session exit %d output %q, want 5 and v-9", r.ExitCode, term.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("session did not end; output %q", term.String())
	}
	if err := sess.Resize(0, 10); !errs.Is(err, errs.Invalid) {
		t.Errorf("resize to 0 columns: %v, want Invalid", err)
	}

	for name, op := range map[string]func(ctx context.Context) error{
		"start": func(ctx context.Context) error {
			_, err := svc.StartProcess(ctx, sb.ID, sandbox.ProcessRequest{Command: "true"})
			return err
		},
		"list": func(ctx context.Context) error { _, err := svc.ListProcesses(ctx, sb.ID); return err },
		"get":  func(ctx context.Context) error { _, err := svc.GetProcess(ctx, sb.ID, p.ID); return err },
		"kill": func(ctx context.Context) error { _, err := svc.KillProcess(ctx, sb.ID, p.ID); return err },
		"output": func(ctx context.Context) error {
			_, err := svc.ProcessOutput(ctx, sb.ID, p.ID, 0, false, func(agent.OutputChunk) error { return nil })
			return err
		},
		"session": func(ctx context.Context) error {
			s, err := svc.OpenSession(ctx, sb.ID, sandbox.ProcessRequest{Command: "true"})
			if s != nil {
				s.Close()
			}
			return err
		},
	} {
		if err := op(mallory); !errs.Is(err, errs.NotFound) {
			t.Errorf("%s by another tenant: %v, want NotFound", name, err)
		}
		if err := op(alice); err != nil {
			t.Errorf("%s by the owner: %v", name, err)
		}
	}

	for name, req := range map[string]sandbox.ProcessRequest{
		"negative timeout": {Command: "true", Timeout: -time.Second},
		"huge terminal":    {Command: "true", TTY: true, Cols: 100000},
		"huge ring":        {Command: "true", OutputLimit: 1 << 30},
		"no command":       {},
	} {
		if _, err := svc.StartProcess(alice, sb.ID, req); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	if _, err := svc.GetProcess(alice, sb.ID, "../../etc"); !errs.Is(err, errs.NotFound) {
		t.Errorf("junk process id: %v, want NotFound", err)
	}
}
