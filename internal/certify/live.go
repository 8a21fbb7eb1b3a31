package certify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// timeoutScript is the exec the "exec timeout kills" step times out: a
// shell waiting on a background child, both writing their pids to
// timeoutPids.
const timeoutScript = "echo $$ > " + timeoutPids + "; sleep 30 & echo $! >> " + timeoutPids + "; wait"

// timeoutPids is where timeoutScript records its pids inside the sandbox.
const timeoutPids = "/tmp/stacyvm-certify-timeout.pids"

// aliveScript prints the pids from timeoutPids that still run: present,
// not a zombie, and still a command line naming sleep (a reused pid is
// some other program). A missing pid file exits 2.
const aliveScript = "[ -s " + timeoutPids + " ] || { echo 'pid file " + timeoutPids + " missing' >&2; exit 2; }; " +
	"for p in $(cat " + timeoutPids + "); do " +
	"if [ -r /proc/$p/status ] && ! grep -q '^State:.*Z' /proc/$p/status && grep -q sleep /proc/$p/cmdline 2>/dev/null; then echo $p; fi; " +
	"done; exit 0"

// liveTimeout bounds each live step.
const liveTimeout = 90 * time.Second

// providerEntry is the part of GET /providers certify reads.
type providerEntry struct {
	Name             string `json:"name"`
	Healthy          bool   `json:"healthy"`
	Error            string `json:"error"`
	Isolation        string `json:"isolation"`
	SecurityBoundary bool   `json:"security_boundary"`
}

// runLive runs the conformance subset for rr.Name through the server and
// appends one LiveCheck per step; a failed spawn skips the steps that need
// the sandbox (they are reported as FAIL with the reason).
func runLive(ctx context.Context, s *server, image string, rr *RuntimeResult) {
	step := func(name string, fn func(ctx context.Context) (string, error)) bool {
		sctx, cancel := context.WithTimeout(ctx, liveTimeout)
		defer cancel()
		t0 := time.Now()
		detail, err := fn(sctx)
		c := LiveCheck{Name: name, Status: Pass, Detail: detail, DurationMS: time.Since(t0).Milliseconds()}
		if err != nil {
			c.Status, c.Detail = Fail, err.Error()
		}
		rr.Live = append(rr.Live, c)
		return err == nil
	}
	cl := s.client
	timings := map[string]int64{}
	rr.Timings = timings

	step("listed healthy in GET /providers", func(ctx context.Context) (string, error) {
		var ps []providerEntry
		if err := s.getJSON(ctx, "/providers", &ps); err != nil {
			return "", err
		}
		i := slices.IndexFunc(ps, func(p providerEntry) bool { return p.Name == rr.Name })
		if i < 0 {
			return "", fmt.Errorf("%s is not listed", rr.Name)
		}
		p := ps[i]
		rr.Isolation = p.Isolation
		b := p.SecurityBoundary
		rr.Boundary = &b
		if !p.Healthy {
			return "", fmt.Errorf("unhealthy: %s", p.Error)
		}
		return fmt.Sprintf("isolation %s, security boundary %t", p.Isolation, p.SecurityBoundary), nil
	})

	var id string
	ok := step("spawn", func(ctx context.Context) (string, error) {
		t0 := time.Now()
		sb, err := cl.Spawn(ctx, apiclient.SpawnRequest{Provider: rr.Name, Image: image, TTL: "10m", MemoryMB: 256})
		if err != nil {
			return "", err
		}
		s.track(sb.ID)
		id = sb.ID
		timings["spawn"] = time.Since(t0).Milliseconds()
		if sb.State != "running" || sb.Provider != rr.Name {
			return "", fmt.Errorf("sandbox %s is %s on %s, want running on %s", sb.ID, sb.State, sb.Provider, rr.Name)
		}
		return sb.ID, nil
	})
	if !ok {
		for _, name := range []string{"exec", "exec exit code", "exec timeout kills", "files write/read/list", "destroy"} {
			rr.Live = append(rr.Live, LiveCheck{Name: name, Status: Fail, Detail: "no sandbox (spawn failed)"})
		}
		return
	}
	step("exec", func(ctx context.Context) (string, error) {
		t0 := time.Now()
		res, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: "echo certify-$((40+2))"})
		if err != nil {
			return "", err
		}
		timings["first_exec"] = time.Since(t0).Milliseconds()
		if res.Stdout != "certify-42\n" || res.ExitCode != 0 {
			return "", fmt.Errorf("stdout %q exit %d, want %q exit 0", res.Stdout, res.ExitCode, "certify-42\n")
		}
		var d []int64
		for range 5 {
			t1 := time.Now()
			if _, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: "true"}); err != nil {
				return "", err
			}
			d = append(d, time.Since(t1).Milliseconds())
		}
		slices.Sort(d)
		timings["exec"] = d[len(d)/2]
		return "shell exec and 5 more (median in timings)", nil
	})
	step("exec exit code", func(ctx context.Context) (string, error) {
		res, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: "echo oops >&2; exit 3"})
		if err != nil {
			return "", err
		}
		if res.ExitCode != 3 || res.Stderr != "oops\n" {
			return "", fmt.Errorf("exit %d stderr %q, want 3 and %q", res.ExitCode, res.Stderr, "oops\n")
		}
		return "exit 3 and stderr kept", nil
	})
	step("exec timeout kills", func(ctx context.Context) (string, error) {
		t0 := time.Now()
		// The shell and its background child record their pids: the check
		// then looks at exactly those, never at a process list, which on a
		// runtime sharing the host's /proc (proot) shows every process on
		// the machine, other sandboxes' and other programs' "sleep 30" too.
		_, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: timeoutScript, Timeout: "1s"})
		var ae *apiclient.APIError
		if !errors.As(err, &ae) || ae.Class() != errs.Timeout {
			return "", fmt.Errorf("got %v, want a 408 TIMEOUT", err)
		}
		if el := time.Since(t0); el > 10*time.Second {
			return "", fmt.Errorf("timeout answered after %v", el)
		}
		// SIGKILLed processes may take a moment to be gone (reaped or a
		// zombie, which aliveScript does not count).
		deadline := time.Now().Add(5 * time.Second)
		for {
			res, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: aliveScript})
			if err != nil {
				return "", fmt.Errorf("checking the timed-out processes: %w", err)
			}
			if res.ExitCode != 0 {
				return "", fmt.Errorf("checking the timed-out processes: exit %d: %s", res.ExitCode, res.Stderr)
			}
			if res.Stdout == "" {
				return "408 after 1s timeout; the shell and its background child are gone", nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("the timed-out processes are still running 5s after the 408 (pids %q)", strings.TrimSpace(res.Stdout))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	step("files write/read/list", func(ctx context.Context) (string, error) {
		want := []byte("certified \x00\xff binary\n")
		if err := cl.WriteFile(ctx, id, "/workspace/certify/data.bin", want, "0600"); err != nil {
			return "", err
		}
		got, err := cl.ReadFile(ctx, id, "/workspace/certify/data.bin")
		if err != nil {
			return "", err
		}
		if string(got) != string(want) {
			return "", fmt.Errorf("read back %q, want %q", got, want)
		}
		fis, err := cl.ListFiles(ctx, id, "/workspace/certify")
		if err != nil {
			return "", err
		}
		if len(fis) != 1 || fis[0].Path != "/workspace/certify/data.bin" || fis[0].Mode != "600" {
			return "", fmt.Errorf("list = %+v, want one file data.bin with mode 600", fis)
		}
		res, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: "wc -c < /workspace/certify/data.bin"})
		if err != nil {
			return "", err
		}
		if res.Stdout != fmt.Sprintf("%d\n", len(want)) {
			return "", fmt.Errorf("exec sees %q bytes, want %d: exec and files disagree", res.Stdout, len(want))
		}
		return "binary round trip; exec sees the same file", nil
	})
	step("destroy", func(ctx context.Context) (string, error) {
		t0 := time.Now()
		if err := cl.Destroy(ctx, id); err != nil {
			return "", err
		}
		timings["destroy"] = time.Since(t0).Milliseconds()
		if _, err := cl.Exec(ctx, id, apiclient.ExecRequest{Command: "true"}); !apiclient.IsNotFound(err) {
			return "", fmt.Errorf("exec after destroy: %v, want 404", err)
		}
		return "then exec is 404", nil
	})
}

func decodeJSON(r io.Reader, out any) error {
	return json.NewDecoder(io.LimitReader(r, 4<<20)).Decode(out)
}
