package docker

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// OCI runtime names of the docker-based flavours.
const (
	// RuntimeGVisor is the daemon.json entry scripts/ci-prepare.sh
	// registers for /usr/bin/runsc (see docs/decisions/016-gvisor-runtime-entry.md).
	RuntimeGVisor = "runsc"
	// RuntimeKata is Kata Containers 2.x/3.x's containerd shim v2. Docker
	// (23 and later) passes a runtime name of this form straight to
	// containerd, which runs containerd-shim-kata-v2 from PATH; no
	// daemon.json entry is needed.
	RuntimeKata = "io.containerd.kata.v2"
	// RuntimeKataLegacy is Kata 1.x's OCI runtime, registered in
	// daemon.json as "kata-runtime": {"path": "/usr/bin/kata-runtime"}.
	RuntimeKataLegacy = "kata-runtime"
)

// Minimums of the flavours, enforced on every spec (400 below them).
const (
	// gVisor's pids limit counts the sandbox's host threads and stub
	// processes: under ~50 the sandbox cannot start at all.
	gvisorMinPids = 64
	// gVisor's default pids limit: with the ptrace platform every guest
	// thread is also a host thread, and the sentry has its own, so 256
	// (runc's default) kills the sandbox at ~40 guest processes.
	gvisorDefaultPids = 2048
	// Kata boots a guest kernel and its agent inside the VM's memory.
	kataMinMemoryMB = 128
)

// GVisor returns cfg as the "gvisor" flavour: Docker with the runsc runtime,
// userspace-kernel isolation. Both network modes work with the registered
// entry (--network=host: the host kernel's stack inside the container's own
// network namespace), so both are advertised.
func GVisor(cfg Config) Config {
	if cfg.Name == "" {
		cfg.Name = "gvisor"
	}
	if cfg.Runtime == "" {
		cfg.Runtime = RuntimeGVisor
	}
	cfg.Isolation = provider.IsolationUserspace
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = gvisorDefaultPids
	}
	if cfg.MinPidsLimit < gvisorMinPids {
		cfg.MinPidsLimit = gvisorMinPids
	}
	return cfg
}

// Kata returns cfg as the "kata" flavour: Docker with Kata Containers, one
// lightweight VM per sandbox. VM-specific limit: at least kataMinMemoryMB.
func Kata(cfg Config) Config {
	if cfg.Name == "" {
		cfg.Name = "kata"
	}
	if cfg.Runtime == "" {
		cfg.Runtime = RuntimeKata
	}
	cfg.Isolation = provider.IsolationVM
	if cfg.MinMemoryMB < kataMinMemoryMB {
		cfg.MinMemoryMB = kataMinMemoryMB
	}
	return cfg
}

func isolationOf(runtime string) string {
	switch {
	case runtime == RuntimeGVisor || strings.HasPrefix(runtime, "runsc"):
		return provider.IsolationUserspace
	case strings.Contains(runtime, "kata"):
		return provider.IsolationVM
	}
	return provider.IsolationContainer
}

// isShimV2 reports whether runtime is a containerd shim v2 name
// ("io.containerd.kata.v2") that Docker hands to containerd as is.
func isShimV2(runtime string) bool {
	return strings.HasPrefix(runtime, "io.containerd.") && strings.Count(runtime, ".") >= 3
}

// shimBinary is the binary containerd looks up on PATH for a shim v2 name:
// io.containerd.kata.v2 -> containerd-shim-kata-v2.
func shimBinary(runtime string) string {
	parts := strings.Split(runtime, ".")
	if len(parts) < 4 {
		return ""
	}
	return "containerd-shim-" + strings.Join(parts[2:len(parts)-1], "-") + "-" + parts[len(parts)-1]
}

// runtimeCheck caches whether the configured runtime is usable, so Create
// answers 503 at once (not a slow engine error or a 400) when it is not.
type runtimeCheck struct {
	mu      sync.Mutex
	err     error
	checked time.Time
}

const runtimeCheckMaxAge = 10 * time.Second

// runtimeUsable returns nil when the engine knows the configured runtime,
// re-checking at most every runtimeCheckMaxAge. A failure is Unavailable.
func (p *Provider) runtimeUsable(ctx context.Context) error {
	if p.cfg.Runtime == "" || p.cfg.Runtime == "runc" {
		return nil // every engine has it
	}
	p.rtCheck.mu.Lock()
	defer p.rtCheck.mu.Unlock()
	if !p.rtCheck.checked.IsZero() && time.Since(p.rtCheck.checked) < runtimeCheckMaxAge {
		return p.rtCheck.err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := p.checkRuntime(cctx)
	if ctx.Err() != nil { // the caller gave up: do not cache that
		return err
	}
	p.rtCheck.err, p.rtCheck.checked = err, time.Now()
	return err
}

// checkRuntime asks the engine whether the configured runtime is
// registered (or, for a shim v2 name, whether its shim is on PATH).
func (p *Provider) checkRuntime(ctx context.Context) error {
	runtime := p.cfg.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	if isShimV2(runtime) {
		if _, err := exec.LookPath(shimBinary(runtime)); err != nil {
			return errs.New(errs.Unavailable, "%s provider: runtime %s is not installed (%s not on PATH)", p.cfg.Name, runtime, shimBinary(runtime))
		}
		return nil
	}
	info, err := p.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return classify(ctx, err, "docker engine info")
	}
	if _, ok := info.Info.Runtimes[runtime]; !ok {
		return errs.New(errs.Unavailable, "%s provider: docker runtime %q is not registered with the engine", p.cfg.Name, runtime)
	}
	return nil
}
