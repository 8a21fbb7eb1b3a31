package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func startProc(t *testing.T, a *testAgent, spec agent.ProcessSpec) agent.ProcessInfo {
	t.Helper()
	p, err := a.client.StartProcess(ctxT(t), spec)
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	t.Cleanup(func() { a.client.KillProcess(context.Background(), p.ID) })
	return p
}

// readOutput returns the output from offset until the stream ends, with the
// offset of its first byte and the exit result if it came.
func readOutput(t *testing.T, a *testAgent, id string, offset int64, follow bool) (string, int64, *agent.ExecResult) {
	t.Helper()
	var buf bytes.Buffer
	first := int64(-1)
	res, err := a.client.ProcessOutput(ctxT(t), id, offset, follow, func(c agent.OutputChunk) error {
		if first < 0 {
			first = c.Offset
		}
		if want := first + int64(buf.Len()); c.Offset != want {
			t.Errorf("chunk at offset %d, want %d (contiguous)", c.Offset, want)
		}
		buf.Write(c.Data)
		return nil
	})
	if err != nil {
		t.Fatalf("ProcessOutput: %v", err)
	}
	return buf.String(), first, res
}

func TestProcess_OutputFromAnyOffsetAfterExit(t *testing.T) {
	a := startAgent(t)
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "for i in $(seq 1 500); do echo line-$i; done; exit 4"}}})
	if !p.Running || p.PID <= 0 || p.ID == "" {
		t.Fatalf("start answer %+v, want a running process with an id and pid", p)
	}
	full, first, res := readOutput(t, a, p.ID, 0, true)
	var want strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&want, "line-%d\n", i)
	}
	if full != want.String() || first != 0 {
		t.Fatalf("full output (from %d) differs: %d bytes, want %d", first, len(full), want.Len())
	}
	if res == nil || res.ExitCode != 4 {
		t.Fatalf("exit result %+v, want exit code 4", res)
	}
	mid := int64(len(full) / 2)
	tail, from, res2 := readOutput(t, a, p.ID, mid, false)
	if tail != full[mid:] || from != mid || res2 == nil {
		t.Errorf("from offset %d got %d bytes starting at %d (exit %v), want %d bytes", mid, len(tail), from, res2, len(full)-int(mid))
	}
	info, err := a.client.Process(ctxT(t), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Running || info.ExitCode == nil || *info.ExitCode != 4 || info.OutputEnd != int64(len(full)) || info.ExitedAt == nil {
		t.Errorf("info %+v, want exited with 4 and %d output bytes", info, len(full))
	}
	if _, err := a.client.ProcessOutput(ctxT(t), p.ID, int64(len(full))+1, false, func(agent.OutputChunk) error { return nil }); !errs.Is(err, errs.Invalid) {
		t.Errorf("offset past the end: %v, want Invalid", err)
	}
}

func TestProcess_RingKeepsNewestOutput(t *testing.T) {
	a := startAgent(t)
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "for i in $(seq 1 3000); do echo line-$i; done"}}, OutputLimit: 4096})
	// Wait for the end, then read: a live follower would see the gaps as
	// they happen (offset jumps), which readOutput treats as errors.
	deadline := time.Now().Add(10 * time.Second)
	for info, _ := a.client.Process(ctxT(t), p.ID); info.Running; info, _ = a.client.Process(ctxT(t), p.ID) {
		if time.Now().After(deadline) {
			t.Fatal("process did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, first, res := readOutput(t, a, p.ID, 0, false)
	if res == nil || res.ExitCode != 0 {
		t.Fatalf("exit %+v", res)
	}
	if first == 0 || len(out) > 4096 || !strings.HasSuffix(out, "line-3000\n") {
		t.Errorf("got %d bytes from offset %d ending %q; want at most 4096 bytes, a dropped head and the last line", len(out), first, out[max(0, len(out)-20):])
	}
	info, _ := a.client.Process(ctxT(t), p.ID)
	if info.OutputStart != first || info.OutputEnd != first+int64(len(out)) {
		t.Errorf("info range [%d,%d), want [%d,%d)", info.OutputStart, info.OutputEnd, first, first+int64(len(out)))
	}
}

func TestProcess_FollowStdinSignalKill(t *testing.T) {
	a := startAgent(t)
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"cat"}}, Stdin: true})
	got := &syncBuf{}
	done := make(chan *agent.ExecResult, 1)
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		res, _ := a.client.ProcessOutput(ctx, p.ID, 0, true, func(c agent.OutputChunk) error { got.Write(c.Data); return nil })
		done <- res
	}()
	if err := a.client.ProcessStdin(ctxT(t), p.ID, strings.NewReader("hello\n"), 6, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, got, 0, "hello\n")
	// A follower that goes away leaves the process running.
	cancel()
	if res := <-done; res != nil {
		t.Fatalf("cancelled follower got an exit %+v", res)
	}
	if info, _ := a.client.Process(ctxT(t), p.ID); !info.Running {
		t.Fatalf("process stopped when its follower left: %+v", info)
	}
	if err := a.client.ProcessStdin(ctxT(t), p.ID, strings.NewReader("again\n"), -1, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := a.client.SignalProcess(ctxT(t), p.ID, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	out, _, res := readOutput(t, a, p.ID, 0, true)
	if out != "hello\nagain\n" || res == nil || res.ExitCode != 128+15 {
		t.Errorf("output %q exit %+v, want both lines and 143", out, res)
	}
	if err := a.client.SignalProcess(ctxT(t), p.ID, "SIGTERM"); !errs.Is(err, errs.Conflict) {
		t.Errorf("signal after exit: %v, want Conflict", err)
	}

	s := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"sleep", "300"}}})
	if err := a.client.ProcessStdin(ctxT(t), s.ID, strings.NewReader("x"), 1, false); !errs.Is(err, errs.Conflict) {
		t.Errorf("stdin to a process without stdin: %v, want Conflict", err)
	}
	if err := a.client.ResizeProcess(ctxT(t), s.ID, 10, 10); !errs.Is(err, errs.Conflict) {
		t.Errorf("resize without tty: %v, want Conflict", err)
	}
	k, err := a.client.KillProcess(ctxT(t), s.ID)
	if err != nil || k.Running || k.ExitCode == nil || *k.ExitCode != 137 {
		t.Errorf("kill = %+v, %v; want exited with 137", k, err)
	}
	list, err := a.client.Processes(ctxT(t))
	if err != nil || len(list) != 2 || list[0].ID != p.ID || list[1].ID != s.ID {
		t.Errorf("list = %+v, %v; want both processes in start order", list, err)
	}
}

func TestProcess_TTYBackground(t *testing.T) {
	a := startAgent(t)
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "read x; stty size; echo got-$x"}}, TTY: true, Cols: 90, Rows: 30})
	if err := a.client.ResizeProcess(ctxT(t), p.ID, 120, 40); err != nil {
		t.Fatal(err)
	}
	if err := a.client.ProcessStdin(ctxT(t), p.ID, strings.NewReader("yes\n"), 4, false); err != nil {
		t.Fatal(err)
	}
	out, _, res := readOutput(t, a, p.ID, 0, true)
	if res == nil || res.ExitCode != 0 || !strings.Contains(out, "40 120") || !strings.Contains(out, "got-yes") {
		t.Errorf("output %q exit %+v, want the new size and the echoed input", out, res)
	}
}

func TestProcess_UnknownIDsAndBadInput(t *testing.T) {
	a := startAgent(t)
	ctx := ctxT(t)
	calls := map[string]error{}
	_, calls["get"] = a.client.Process(ctx, "proc-999")
	_, calls["kill"] = a.client.KillProcess(ctx, "nope")
	calls["signal"] = a.client.SignalProcess(ctx, "proc-999", "TERM")
	calls["stdin"] = a.client.ProcessStdin(ctx, "proc-999", nil, 0, true)
	_, calls["output"] = a.client.ProcessOutput(ctx, "proc-999", 0, false, func(agent.OutputChunk) error { return nil })
	for name, err := range calls {
		if !errs.Is(err, errs.NotFound) {
			t.Errorf("%s of an unknown process: %v, want NotFound", name, err)
		}
	}
	if _, err := a.client.StartProcess(ctx, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"true"}}, OutputLimit: 10}); !errs.Is(err, errs.Invalid) {
		t.Errorf("tiny output limit: %v, want Invalid", err)
	}
	if _, err := a.client.StartProcess(ctx, agent.ProcessSpec{}); !errs.Is(err, errs.Invalid) {
		t.Errorf("no argv: %v, want Invalid", err)
	}
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"sleep", "300"}}})
	if err := a.client.SignalProcess(ctx, p.ID, "SIGBOGUS"); !errs.Is(err, errs.Invalid) {
		t.Errorf("bad signal: %v, want Invalid", err)
	}
	if list, _ := a.client.Processes(ctx); len(list) != 1 {
		t.Errorf("list %+v, want the one process", list)
	}
}

func TestProcess_SlowFollowerSeesOffsetJumps(t *testing.T) {
	a := startAgent(t)
	p := startProc(t, a, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo ready; read go; for i in $(seq 1 2000); do echo line-$i; done"}}, Stdin: true, OutputLimit: 4096})
	var chunks []agent.OutputChunk
	ctx := ctxT(t)
	first := true
	res, err := a.client.ProcessOutput(ctx, p.ID, 0, true, func(c agent.OutputChunk) error {
		if first {
			first = false
			// Hold the stream while the process writes far more than the ring.
			if err := a.client.ProcessStdin(ctx, p.ID, strings.NewReader("go\n"), 3, false); err != nil {
				return err
			}
			for info, _ := a.client.Process(ctx, p.ID); info.Running; info, _ = a.client.Process(ctx, p.ID) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		chunks = append(chunks, agent.OutputChunk{Offset: c.Offset, Data: append([]byte(nil), c.Data...)})
		return nil
	})
	if err != nil || res == nil {
		t.Fatalf("follow: %v %v", res, err)
	}
	jumped := false
	for i := 1; i < len(chunks); i++ {
		prev := chunks[i-1].Offset + int64(len(chunks[i-1].Data))
		if chunks[i].Offset < prev {
			t.Fatalf("chunk %d at %d overlaps the previous end %d", i, chunks[i].Offset, prev)
		}
		jumped = jumped || chunks[i].Offset > prev
	}
	last := chunks[len(chunks)-1]
	if !jumped || !bytes.HasSuffix(last.Data, []byte("line-2000\n")) {
		t.Errorf("%d chunks, jumped=%v, last %q; want an offset jump over dropped bytes and the last line", len(chunks), jumped, last.Data)
	}
}

// TestProcess_OldAgentIsNotSupportedNotNotFound: a sandbox whose agent
// predates the process endpoints answers "no such endpoint"; that must not
// read as "no such process".
func TestProcess_OldAgentIsNotSupportedNotNotFound(t *testing.T) {
	dir, err := os.MkdirTemp("", "old")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":"NOT_FOUND","message":"no such agent endpoint"}`)
	})}
	go srv.Serve(l)
	defer srv.Close()
	c := agent.NewUnixClient(filepath.Join(dir, "a.sock"))
	defer c.Close()
	ctx := ctxT(t)
	_, e1 := c.Processes(ctx)
	_, e2 := c.Process(ctx, "proc-1")
	_, e3 := c.OpenSession(ctx, agent.ProcessSpec{ExecRequest: agent.ExecRequest{Argv: []string{"sh"}}})
	_, e4 := c.ProcessOutput(ctx, "proc-1", 0, false, func(agent.OutputChunk) error { return nil })
	for i, err := range []error{e1, e2, e3, e4} {
		if !errs.Is(err, errs.Conflict) {
			t.Errorf("call %d: %v, want Conflict (agent too old)", i, err)
		}
	}
}
