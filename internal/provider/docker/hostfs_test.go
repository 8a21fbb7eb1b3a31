package docker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/provider/docker"
)

// TestHostRoot: the host path sees the sandbox's own mounts (the read-only
// rootfs variant mounts tmpfs on /tmp and /workspace), files written there
// are what the agent then reads, and runtimes other than runc decline.
func TestHostRoot(t *testing.T) {
	for _, ro := range []bool{false, true} {
		p := newProvider(t, docker.Config{ReadOnlyRootfs: ro})
		h, c := sandbox(t, p, spec(busybox))
		root, ok := p.HostRoot(context.Background(), h)
		if !ok {
			t.Fatalf("ro=%v: HostRoot declined a runc sandbox", ro)
		}
		if err := root.WriteFile("tmp/from-host", []byte("hello"), 0o640); err != nil {
			t.Fatalf("ro=%v: write via host root: %v", ro, err)
		}
		root.Close()
		out, code := sh(t, c, "cat /tmp/from-host; stat -c ' %a %u' /tmp/from-host; grep ' /tmp ' /proc/mounts | cut -d' ' -f3")
		want := "hello 640 0\n"
		if ro {
			want += "tmpfs\n"
		}
		if code != 0 || !strings.HasPrefix(out, want) {
			t.Fatalf("ro=%v: inside the sandbox: %q (exit %d), want prefix %q", ro, out, code, want)
		}
		if ro {
			root, _ := p.HostRoot(context.Background(), h)
			err := root.WriteFile("etc/nope", []byte("x"), 0o644)
			root.Close()
			if err == nil {
				t.Fatal("write to the read-only rootfs through the host root succeeded")
			}
		}
	}
}

func TestHostRoot_DeclinesOtherRuntimesAndUsers(t *testing.T) {
	p := newProvider(t, docker.Config{})
	h, _ := sandbox(t, p, spec(busybox))
	for _, cfg := range []docker.Config{{Runtime: "runsc"}, {User: "1000"}} {
		// Not newProvider: its Health check needs the runtime registered.
		cfg.DataDir, cfg.AgentPath, cfg.ServerID = shortTempDir(t), testEnv.agentPath, testEnv.serverID
		q, err := docker.New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if root, ok := q.HostRoot(context.Background(), h); ok {
			root.Close()
			t.Errorf("HostRoot with %+v accepted", cfg)
		}
	}
	// Another provider instance (other data dir) must not accept a
	// sandbox whose run directory is not its own.
	q := newProvider(t, docker.Config{})
	if root, ok := q.HostRoot(context.Background(), h); ok {
		root.Close()
		t.Error("HostRoot accepted a sandbox of another data dir")
	}
}
