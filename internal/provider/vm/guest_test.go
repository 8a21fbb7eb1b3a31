package vm_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
	"github.com/stacyvm/stacyvm/internal/provider/vm"
)

// TestNetwork: none has no device but loopback; bridge is user-mode NAT
// that reaches a server on the host's loopback through 10.0.2.2.
func TestNetwork(t *testing.T) {
	needVM(t)
	p := newProvider(t, dataDir(t), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello-from-host") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	get := `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 10.0.2.2 ` + strconv.Itoa(port)

	for _, tc := range []struct{ network, script, want string }{
		// busybox-static's wget crashes (also under Docker); nc works.
		{provider.NetworkNone, "ls /sys/class/net; " + get + " || echo unreachable", "lo\nunreachable\n"},
		{provider.NetworkBridge, get + " | tail -n 1", "hello-from-host"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			id := providertest.NewSandboxID()
			h, err := p.Create(ctx, provider.Spec{SandboxID: id, Image: busybox, Network: tc.network})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			t.Cleanup(func() { p.Destroy(context.Background(), h) })
			c, err := p.Agent(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			var out, stderr bytes.Buffer
			res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", tc.script}}, &out, &stderr)
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			if out.String() != tc.want {
				t.Errorf("network %s: got %q (exit %d, stderr %q), want %q", tc.network, out.String(), res.ExitCode, stderr.String(), tc.want)
			}
		})
	}
}

// TestMeasureBootToAgent measures Create (cached image: overlay, initramfs,
// QEMU start, kernel, init, agent handshake and ping) N times in a row
// under TCG, and once under KVM with a short timeout. It runs only when
// STACYVM_VM_BOOTS=N is set (docs/vm.md records the numbers).
func TestMeasureBootToAgent(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STACYVM_VM_BOOTS"))
	if n <= 0 {
		t.Skip("set STACYVM_VM_BOOTS=N to measure")
	}
	needVM(t)
	dir := dataDir(t)
	measure := func(p *vm.Provider, timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		id := providertest.NewSandboxID()
		start := time.Now()
		h, err := p.Create(ctx, provider.Spec{SandboxID: id, Image: busybox})
		took := time.Since(start)
		p.Destroy(context.Background(), provider.Handle{Provider: p.Name(), SandboxID: id})
		_ = h
		return took, err
	}
	p := newProvider(t, dir, nil)
	if _, err := measure(p, 3*time.Minute); err != nil { // converts the image
		t.Fatal(err)
	}
	var ds []time.Duration
	for range n {
		d, err := measure(p, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	t.Logf("TCG create-to-agent over %d boots: median %v, min %v, max %v, all %v", n, ds[len(ds)/2], ds[0], ds[len(ds)-1], ds)
	if os.Getenv("STACYVM_VM_TRY_KVM") == "1" {
		kp := newProvider(t, dir, func(c *vm.Config) { c.Accel = vm.AccelKVM; c.BootTimeout = 45 * time.Second })
		d, err := measure(kp, time.Minute)
		t.Logf("KVM create-to-agent: %v, err %v", d, err)
	}
}

// TestGuestInit: the agent as the guest's PID 1 sets up what a container
// runtime would: hostname, environment (image ENV, then the spec's), kernel
// file systems, the pids limit (a cgroup every sandbox process is in), and
// a clock that follows the host's.
func TestGuestInit(t *testing.T) {
	needVM(t)
	t.Parallel()
	p := newProvider(t, dataDir(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := providertest.NewSandboxID()
	h, err := p.Create(ctx, provider.Spec{SandboxID: id, Image: busybox, PidsLimit: 77, Env: map[string]string{"FROM_SPEC": "yes"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	script := `hostname; echo "$FROM_SPEC $PATH"; cat /proc/1/cmdline | tr '\0' ' '; echo;
for m in /proc /sys /dev /dev/pts /tmp /run; do grep -q " $m " /proc/mounts && echo "mounted $m"; done
touch /tmp/x && echo tmp-writable; cat /sys/fs/cgroup/sandbox/pids.max; cat /proc/self/cgroup; date +%s`
	var out bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}, &out, nil)
	host := time.Now().Unix()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec = %+v, %v", res, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{id, "yes /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"/.stacyvm/agent --guest /.stacyvm/config.json ",
		"mounted /proc", "mounted /sys", "mounted /dev", "mounted /dev/pts", "mounted /tmp", "mounted /run", "tmp-writable",
		"77", "0::/sandbox"}
	if len(lines) != len(want)+1 {
		t.Fatalf("guest says:\n%s", out.String())
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	guest, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if d := guest - host; d < -3 || d > 3 {
		t.Errorf("guest clock %d is %ds off the host's %d", guest, d, host)
	}
}

// TestAgentVsockListener runs a second agent inside a VM on
// --listen vsock://PORT (the guest side the Firecracker backend needs) and
// talks HTTP to it over vsock loopback from python in the guest: this
// host's kernel has no vsock transport of its own to test with.
func TestAgentVsockListener(t *testing.T) {
	needVM(t)
	if err := exec.Command("docker", "image", "inspect", "stacyvm/python:latest").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("stacyvm/python:latest missing and CI=true")
		}
		t.Skip("stacyvm/python:latest not built")
	}
	t.Parallel()
	p := newProvider(t, dataDir(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "stacyvm/python:latest"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	script := `/.stacyvm/agent --listen vsock://5123 --workdir /tmp 2>/tmp/vsock-agent.log &
python3 - <<'PY'
import socket, time
for _ in range(100):
    try:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.connect((socket.VMADDR_CID_LOCAL if hasattr(socket, "VMADDR_CID_LOCAL") else 1, 5123))
        break
    except OSError:
        time.sleep(0.1)
s.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print(data.split(b"\r\n")[0].decode())
print("protocol_version" in data.decode())
PY`
	var out, stderr bytes.Buffer
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}, TimeoutMS: 120000}, &out, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "HTTP/1.1 200 OK\nTrue\n" {
		t.Errorf("vsock ping = %q (exit %d, stderr %q)", out.String(), res.ExitCode, stderr.String())
	}
}

// TestChannelTakeoverAfterOwnerCloses is a server restart in one process:
// the provider that owned a VM's agent channel closes (as a stopping server
// does), a new instance on the same data dir takes the channel over, and
// the guest agent serves it on a fresh session.
func TestChannelTakeoverAfterOwnerCloses(t *testing.T) {
	needVM(t)
	t.Parallel()
	dir := dataDir(t)
	p1 := newProvider(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := p1.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	c1, _ := p1.Agent(ctx, h)
	if _, err := c1.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	if _, err := os.Stat(h.Data["agent_socket"]); !os.IsNotExist(err) {
		t.Errorf("relay socket still there after the owner closed: %v", err)
	}
	p2 := newProvider(t, dir, nil)
	t.Cleanup(func() { p2.Destroy(context.Background(), h) })
	for i := range 3 { // the first call takes over; later ones reuse it
		c2, err := p2.Agent(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		start := time.Now()
		res, err := c2.Exec(ctx, agent.ExecRequest{Argv: []string{"echo", "taken-over"}}, &out, nil)
		if err != nil || res.ExitCode != 0 || out.String() != "taken-over\n" {
			t.Fatalf("exec %d through the new owner = %q, %+v, %v", i, out.String(), res, err)
		}
		t.Logf("exec %d after takeover: %v", i, time.Since(start))
	}
}
