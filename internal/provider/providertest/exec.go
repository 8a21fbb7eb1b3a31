package providertest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
)

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// testExec runs every exec behaviour against one sandbox; subtests run in
// parallel and use distinct file names.
func (s *suite) testExec(t *testing.T) {
	_, c := s.sandbox(t)
	ctx := s.ctx(t)
	put := func(t *testing.T, path string, data []byte) {
		t.Helper()
		if err := c.WriteFile(ctx, path, 0o644, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("WriteFile(%s): %v", path, err)
		}
	}

	t.Run("ShellScript", func(t *testing.T) {
		t.Parallel()
		out, _, res := run(t, c, agent.ExecRequest{Argv: sh("echo hello; echo $((1+2))")})
		if out != "hello\n3\n" || res.ExitCode != 0 {
			t.Errorf("shell = %q (exit %d), want %q", out, res.ExitCode, "hello\n3\n")
		}
	})
	t.Run("ArgvIsLiteral", func(t *testing.T) {
		t.Parallel()
		out, _, _ := run(t, c, agent.ExecRequest{Argv: []string{"echo", "$HOME", "a  b", "*"}})
		if want := "$HOME a  b *\n"; out != want {
			t.Errorf("argv exec = %q, want %q (no shell expansion)", out, want)
		}
	})
	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			script string
			want   int
		}{{"true", 0}, {"exit 3", 3}, {"exit 255", 255}, {"no-such-command-xyz 2>/dev/null", 127}, {"kill -9 $$", 137}} {
			_, _, res := run(t, c, agent.ExecRequest{Argv: sh(tc.script)})
			if res.ExitCode != tc.want { // signals: 128+N, the shell convention
				t.Errorf("%q: exit code %d, want %d", tc.script, res.ExitCode, tc.want)
			}
		}
	})
	t.Run("MissingProgramFails", func(t *testing.T) {
		t.Parallel()
		res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/no/such/program"}}, nil, nil)
		if err == nil && res.ExitCode == 0 {
			t.Errorf("exec of a missing program succeeded: %+v", res)
		}
	})
	t.Run("Stderr", func(t *testing.T) {
		t.Parallel()
		out, errOut, res := run(t, c, agent.ExecRequest{Argv: sh("echo out; echo err >&2; exit 1")})
		if out != "out\n" || errOut != "err\n" || res.ExitCode != 1 {
			t.Errorf("got stdout %q stderr %q exit %d; want %q %q 1", out, errOut, res.ExitCode, "out\n", "err\n")
		}
	})
	t.Run("Env", func(t *testing.T) {
		t.Parallel()
		out, _, _ := run(t, c, agent.ExecRequest{
			Argv: sh(`echo "$STACY_SPEC_ENV|$STACY_EXEC_ENV"`),
			Env:  map[string]string{"STACY_EXEC_ENV": "from-exec"},
		})
		if want := specEnvVal + "|from-exec\n"; out != want {
			t.Errorf("env = %q, want %q", out, want)
		}
		out, _, _ = run(t, c, agent.ExecRequest{Argv: sh(`echo "$STACY_SPEC_ENV"`), Env: map[string]string{specEnvKey: "overridden"}})
		if out != "overridden\n" {
			t.Errorf("per-exec env override = %q, want %q", out, "overridden\n")
		}
		out, _, _ = run(t, c, agent.ExecRequest{Argv: []string{"env"}})
		if strings.Contains(out, "STACYVM_LEAK_CANARY") {
			t.Errorf("the server's environment leaked into the sandbox: %q", out)
		}
	})
	t.Run("Workdir", func(t *testing.T) {
		t.Parallel()
		put(t, "/workspace/wd-dir/marker.txt", []byte("in-dir"))
		put(t, "/workspace/wd-default-marker.txt", []byte("in-default"))
		out, _, _ := run(t, c, agent.ExecRequest{Argv: []string{"cat", "marker.txt"}, Workdir: "/workspace/wd-dir"})
		if out != "in-dir" {
			t.Errorf("exec in workdir = %q, want %q", out, "in-dir")
		}
		out, _, _ = run(t, c, agent.ExecRequest{Argv: []string{"cat", "wd-default-marker.txt"}})
		if out != "in-default" {
			t.Errorf("exec in default workdir (/workspace) = %q, want %q", out, "in-default")
		}
		if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"true"}, Workdir: "/no/such/dir"}, nil, nil); err == nil {
			t.Errorf("exec in a missing workdir: got nil error")
		}
	})
	t.Run("StreamingOrder", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{start: time.Now()}
		res, err := c.Exec(ctx, agent.ExecRequest{Argv: sh("echo o1; sleep 0.3; echo e1 >&2; sleep 0.3; echo o2; sleep 0.3; echo e2 >&2")},
			rec.stream("out"), rec.stream("err"))
		end := time.Since(rec.start)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("exec = %+v, %v", res, err)
		}
		if got, want := rec.sequence(), "out:o1 err:e1 out:o2 err:e2"; got != want {
			t.Errorf("order = %q, want %q", got, want)
		}
		if first := rec.first(); end-first < 600*time.Millisecond {
			t.Errorf("first output arrived at %v, exec ended at %v: output is not streamed", first, end)
		}
	})
	t.Run("BinaryOutput", func(t *testing.T) {
		t.Parallel()
		var data []byte
		for i := range 4 * 256 {
			data = append(data, byte(i))
		}
		put(t, "/workspace/binary-out.dat", data)
		var out bytes.Buffer
		// A relative path: argv is not translated by rooted (mock) agents.
		if res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"cat", "binary-out.dat"}}, &out, nil); err != nil || res.ExitCode != 0 {
			t.Fatalf("cat = %+v, %v", res, err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("binary output: got %d bytes, want the %d written (first diff matters)", out.Len(), len(data))
		}
	})
	t.Run("LargeOutput10MB", func(t *testing.T) {
		t.Parallel()
		const n = 10 << 20
		var w countWriter
		start := time.Now()
		res, err := c.Exec(ctx, agent.ExecRequest{Argv: sh(fmt.Sprintf("head -c %d /dev/zero", n))}, &w, nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("exec = %+v, %v", res, err)
		}
		if w.n != n {
			t.Errorf("got %d bytes of output, want %d", w.n, n)
		}
		t.Logf("10 MB of output in %v", time.Since(start))
	})
	t.Run("TimeoutKillsProcessGroup", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		_, _, res := run(t, c, agent.ExecRequest{Argv: sh("sleep 60 & echo $! > timeout-gc.pid; wait"), TimeoutMS: 500})
		if !res.TimedOut {
			t.Errorf("result = %+v, want TimedOut", res)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("timed-out exec returned after %v", el)
		}
		waitGone(t, c, "timeout-gc.pid")
	})
	t.Run("TimeoutKillsBackgroundTree", func(t *testing.T) {
		t.Parallel()
		// A background child and a grandchild in a background subshell:
		// the timeout kills the whole tree, not only the exec's shell.
		script := "sleep 61 & echo $! > timeout-tree-child.pid; " +
			"(sleep 62 & echo $! > timeout-tree-grandchild.pid; wait) & wait"
		_, _, res := run(t, c, agent.ExecRequest{Argv: sh(script), TimeoutMS: 1000})
		if !res.TimedOut || res.ExitCode != -1 {
			t.Errorf("result = %+v, want TimedOut with exit code -1", res)
		}
		waitGone(t, c, "timeout-tree-child.pid")
		waitGone(t, c, "timeout-tree-grandchild.pid")
	})
	t.Run("CancelKillsProcessGroup", func(t *testing.T) {
		t.Parallel()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		started := make(chan struct{})
		var once sync.Once
		w := writerFunc(func(b []byte) (int, error) {
			if bytes.Contains(b, []byte("started")) {
				once.Do(func() { close(started) })
			}
			return len(b), nil
		})
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(cctx, agent.ExecRequest{Argv: sh("sleep 60 & echo $! > cancel-gc.pid; echo started; wait")}, w, nil)
			done <- err
		}()
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("exec never printed started")
		}
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("cancelled exec returned nil error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancelled exec did not return within 5s")
		}
		waitGone(t, c, "cancel-gc.pid")
	})
}

// waitGone polls until the pid in pidFile (in /workspace) no longer runs.
func waitGone(t *testing.T, c *agent.Client, pidFile string) {
	t.Helper()
	script := fmt.Sprintf(`p=$(cat %s) || exit 2; if kill -0 "$p" 2>/dev/null; then grep -q '^State:.*Z' /proc/$p/status 2>/dev/null && echo gone || echo alive; else echo gone; fi`, pidFile)
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _, res := run(t, c, agent.ExecRequest{Argv: sh(script)})
		if res.ExitCode == 2 {
			t.Fatalf("pid file %s missing", pidFile)
		}
		if out == "gone\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild from %s still alive 5s after the exec ended", pidFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// recorder logs output chunks of both streams in arrival order.
type recorder struct {
	mu     sync.Mutex
	start  time.Time
	events []string
	at     []time.Duration
}

func (r *recorder) stream(name string) writerFunc {
	return func(b []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, line := range strings.Fields(string(b)) {
			r.events = append(r.events, name+":"+line)
			r.at = append(r.at, time.Since(r.start))
		}
		return len(b), nil
	}
}

func (r *recorder) sequence() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, " ")
}

func (r *recorder) first() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) == 0 {
		return time.Hour
	}
	return r.at[0]
}
