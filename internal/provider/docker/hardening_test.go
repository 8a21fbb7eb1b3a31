package docker_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
)

func TestHardening_DefaultsAreApplied(t *testing.T) {
	p := newProvider(t, docker.Config{PidsLimit: 64})
	sp := spec(busybox)
	sp.MemoryMB = 128
	_, c := sandbox(t, p, sp)

	status, _ := sh(t, c, "cat /proc/self/status")
	for _, want := range []string{"CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q:\n%s", want, status)
		}
	}
	// The limits as the sandbox's own cgroup shows them, on either cgroup
	// version (Docker mounts the container's cgroup at /sys/fs/cgroup).
	// Swap is off: memory+swap equals memory (v1), swap.max is 0 (v2).
	limits := map[string]string{
		"/sys/fs/cgroup/memory/memory.limit_in_bytes":       fmt.Sprint(128 << 20),
		"/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": fmt.Sprint(128 << 20),
		"/sys/fs/cgroup/pids/pids.max":                      "64",
	}
	swapFile := "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
	if _, code := sh(t, c, "test -f /sys/fs/cgroup/cgroup.controllers"); code == 0 {
		limits = map[string]string{
			"/sys/fs/cgroup/memory.max":      fmt.Sprint(128 << 20),
			"/sys/fs/cgroup/memory.swap.max": "0",
			"/sys/fs/cgroup/pids.max":        "64",
		}
		swapFile = "/sys/fs/cgroup/memory.swap.max"
		t.Log("cgroup v2")
	}
	for file, want := range limits {
		out, code := sh(t, c, "cat "+file)
		if file == swapFile && code != 0 {
			t.Logf("%s not available (swap accounting off): %s", file, out)
			continue
		}
		if strings.TrimSpace(out) != want {
			t.Errorf("%s = %q, want %q", file, strings.TrimSpace(out), want)
		}
	}
	if out, _ := sh(t, c, "ls /sys/class/net"); strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
		t.Errorf("network interfaces = %q, want only lo", out)
	}
	if out, code := sh(t, c, "ls -la /var/run/docker.sock /run/docker.sock 2>&1"); code == 0 {
		t.Errorf("the host's docker socket is visible inside: %s", out)
	}
	// No route to any docker API: the engine's usual TCP port on loopback
	// (the sandbox's own) and on the docker0 gateway.
	// (nc, not wget: the image's static busybox wget crashes, exit 139,
	// which would make this check pass whatever the network.)
	for _, addr := range []string{"127.0.0.1:2375", "127.0.0.1:2376", net.JoinHostPort(bridgeGateway(t).String(), "2375")} {
		host, port, _ := net.SplitHostPort(addr)
		if out, code := sh(t, c, "timeout 3 nc "+host+" "+port+" </dev/null 2>&1"); code == 0 {
			t.Errorf("reached %s from a network-none sandbox: %s", addr, out)
		}
	}
	if out, code := sh(t, c, "mount -t tmpfs none /mnt 2>&1"); code == 0 {
		t.Errorf("mount succeeded without capabilities: %s", out)
	}
}

// bridgeGateway is the host's address on Docker's default bridge network
// (docker0): IPAM's gateway when the engine reports one, else the address
// of the bridge interface inside the network's subnet.
func bridgeGateway(t *testing.T) netip.Addr {
	t.Helper()
	requireDocker(t)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cli.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{})
	if err != nil {
		t.Fatalf("docker network inspect bridge: %v", err)
	}
	for _, c := range res.Network.IPAM.Config {
		if c.Gateway.IsValid() {
			return c.Gateway
		}
	}
	ifname := res.Network.Options["com.docker.network.bridge.name"]
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatalf("bridge interface %q: %v", ifname, err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		for _, c := range res.Network.IPAM.Config {
			if c.Subnet.Contains(pfx.Addr()) {
				return pfx.Addr()
			}
		}
	}
	t.Fatalf("no address of %s in the bridge network's subnets %v", ifname, res.Network.IPAM.Config)
	return netip.Addr{}
}

// TestHardening_NetworkNoneCannotReachTheHost listens on the host's docker0
// address and connects to it from two sandboxes: the bridge one (the
// control, proving the probe works) gets through; the network-none one
// fails, and has no interface but lo and no route.
func TestHardening_NetworkNoneCannotReachTheHost(t *testing.T) {
	p := newProvider(t, docker.Config{})
	gw := bridgeGateway(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		t.Fatalf("listen on the docker0 address %s: %v", gw, err)
	}
	done := make(chan struct{})
	go func() { // greet every connection, until the listener closes
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello-from-host\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	probe := "timeout 5 nc " + strings.Replace(ln.Addr().String(), ":", " ", 1) + " </dev/null 2>&1"

	bridge := spec(busybox)
	bridge.Network = provider.NetworkBridge
	_, cb := sandbox(t, p, bridge)
	if out, code := sh(t, cb, probe); code != 0 || !strings.Contains(out, "hello-from-host") {
		t.Fatalf("control: a bridge sandbox cannot reach %s (%q, exit %d); the probe proves nothing here", ln.Addr(), out, code)
	}

	_, cn := sandbox(t, p, spec(busybox)) // network none
	if out, code := sh(t, cn, probe); code == 0 || strings.Contains(out, "hello-from-host") {
		t.Errorf("network none: %q reached the host: %q (exit %d)", probe, out, code)
	}
	if out, _ := sh(t, cn, "ls /sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Errorf("network none: interfaces %q, want only lo", out)
	}
	if out, _ := sh(t, cn, "ip route 2>&1; ip -6 route 2>&1"); strings.TrimSpace(out) != "" {
		t.Errorf("network none: routes %q, want none", out)
	}
}

func TestHardening_BridgeNetworkHasEth0(t *testing.T) {
	p := newProvider(t, docker.Config{})
	sp := spec(busybox)
	sp.Network = provider.NetworkBridge
	_, c := sandbox(t, p, sp)
	if out, _ := sh(t, c, "ls /sys/class/net"); !slices.Contains(strings.Fields(out), "eth0") {
		t.Errorf("bridge sandbox interfaces = %q, want eth0", out)
	}
}

func TestHardening_ReadOnlyRootfs(t *testing.T) {
	p := newProvider(t, docker.Config{ReadOnlyRootfs: true})
	_, c := sandbox(t, p, spec(busybox))
	if out, code := sh(t, c, "touch /etc/stacy 2>&1"); code == 0 {
		t.Errorf("wrote to a read-only rootfs: %s", out)
	}
	if out, code := sh(t, c, "touch /tmp/x /workspace/y && echo ok"); code != 0 || out != "ok\n" {
		t.Errorf("/tmp and /workspace not writable: %q (exit %d)", out, code)
	}
}

func TestCreate_MissingImageWithPullNeverIsInvalid(t *testing.T) {
	p := newProvider(t, docker.Config{Pull: docker.PullNever})
	start := time.Now()
	_, err := p.Create(context.Background(), spec("stacyvm/does-not-exist:"+strings.TrimPrefix(providertest.NewSandboxID(), "sb-")))
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(errs.Message(err), "pulling disabled") {
		t.Errorf("Create(missing image) = %v, want Invalid mentioning pulling disabled", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("missing image reported after %v, want quickly", el)
	}
}

func TestCreate_FailureLeavesNothing(t *testing.T) {
	cases := map[string]docker.Config{"UnknownRuntime": {Runtime: "no-such-runtime"}}
	// An "agent" that dies at once: Create must report its output.
	script := filepath.Join(shortTempDir(t), "dying-agent")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho agent-fell-over >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases["AgentExitsAtOnce"] = docker.Config{AgentPath: script}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			cfg.DataDir = shortTempDir(t)
			cfg.ServerID = "test-" + providertest.NewSandboxID()
			requireDocker(t)
			if cfg.AgentPath == "" {
				cfg.AgentPath = testEnv.agentPath
			}
			p, err := docker.New(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, err = p.Create(ctx, spec(busybox))
			if err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			t.Logf("Create error (%v): %v", errs.ClassOf(err), err)
			// A runtime the engine does not know is the server's
			// misconfiguration, not the caller's: 503, like an unhealthy
			// provider.
			if name == "UnknownRuntime" && errs.ClassOf(err) != errs.Unavailable {
				t.Errorf("unknown runtime: class %v, want Unavailable", errs.ClassOf(err))
			}
			if name == "AgentExitsAtOnce" && !strings.Contains(err.Error(), "agent-fell-over") {
				t.Errorf("error lacks the container's last log lines: %v", err)
			}
			if hs, err := p.List(ctx); err != nil || len(hs) != 0 {
				t.Errorf("List after failed Create = %v, %v; want nothing", hs, err)
			}
			if ents, _ := os.ReadDir(filepath.Join(cfg.DataDir, "sb")); len(ents) != 0 {
				t.Errorf("failed Create left %d host dirs", len(ents))
			}
		})
	}
}

func TestInspect_KilledContainerIsStopped(t *testing.T) {
	p := newProvider(t, docker.Config{})
	h, _ := sandbox(t, p, spec(busybox))
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.ContainerKill(ctx, h.RuntimeID, client.ContainerKillOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := p.Inspect(ctx, h)
		if err == nil && st.State == provider.RuntimeStopped {
			if st.ExitCode != 137 {
				t.Errorf("exit code = %d, want 137 (SIGKILL)", st.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect after kill = %+v, %v; want stopped", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hs, _ := p.List(ctx); !slices.ContainsFunc(hs, func(x provider.Handle) bool { return x.SandboxID == h.SandboxID }) {
		t.Errorf("List lacks the stopped sandbox %s", h.SandboxID)
	}
}

func TestUnreachableEngineIsUnavailable(t *testing.T) {
	dir := shortTempDir(t)
	p, err := docker.New(context.Background(), docker.Config{
		Host: "unix://" + filepath.Join(dir, "no-engine.sock"), DataDir: dir,
		AgentPath: testEnv.agentPath, ServerID: "x", Pull: docker.PullNever,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Health(ctx); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("Health = %v, want Unavailable", err)
	}
	if _, err := p.Create(ctx, spec(busybox)); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("Create = %v, want Unavailable", err)
	}
	if _, err := p.List(ctx); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("List = %v, want Unavailable", err)
	}
}

// fakeEngine serves just enough of the engine API over a unix socket to
// drive the pull path without a registry: images are never local and every
// pull fails.
func fakeEngine(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "engine.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/images/create"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"pull access denied for nope, repository does not exist"}`))
		case strings.Contains(r.URL.Path, "/images/"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"No such image: nope"}`))
		default:
			w.WriteHeader(http.StatusNotImplemented)
			w.Write([]byte(`{"message":"not in fake"}`))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

func TestCreate_MissingImagePullFailureIsInvalid(t *testing.T) {
	p, err := docker.New(context.Background(), docker.Config{
		Host: fakeEngine(t), DataDir: shortTempDir(t), AgentPath: testEnv.agentPath, ServerID: "x",
		Pull: docker.PullMissing, PullTimeout: 5 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Create(context.Background(), spec("nope:latest"))
	msg := errs.Message(err)
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(msg, "not found locally and could not be pulled") || !strings.Contains(msg, "pull access denied") {
		t.Errorf("Create = %v (message %q), want Invalid with the pull's short reason", err, msg)
	}
}
