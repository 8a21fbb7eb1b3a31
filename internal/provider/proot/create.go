package proot

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// joinScript is run by the host's /bin/sh: it moves itself into the
// sandbox's cgroups ($1, space-separated cgroup.procs files) and then
// becomes proot, so every process of the sandbox is born inside them.
const joinScript = `for f in $1; do echo $$ > "$f" || exit 125; done; shift; exec "$@"`

// Create exports the image (once), copies its rootfs for the sandbox,
// starts the agent under proot in its own session and cgroups, and returns
// once the agent answers. On failure everything is undone in reverse.
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (h provider.Handle, err error) {
	if err := validID(spec.SandboxID); err != nil {
		return h, err
	}
	if n := spec.Network; n != "" && n != NetworkHost {
		return h, errs.New(errs.Invalid, "provider %s shares the host's network; network %q is not supported (supported: %s)", p.cfg.Name, n, NetworkHost)
	}
	memMB, cpus, pids := spec.MemoryMB, spec.VCPUs, spec.PidsLimit
	if memMB == 0 {
		memMB = p.cfg.DefaultMemoryMB
	}
	if cpus == 0 {
		cpus = p.cfg.DefaultCPUs
	}
	if pids == 0 {
		pids = p.cfg.PidsLimit
	}
	if memMB < 16 || cpus < 0 || pids < 0 {
		return h, errs.New(errs.Invalid, "resource limits out of range (memory >= 16 MB, cpus >= 0, pids >= 0)")
	}
	bin := p.prootBinary()
	if bin == "" {
		if err := p.Health(ctx); err != nil {
			return h, err
		}
		bin = p.prootBinary()
	}
	img, err := p.image(ctx, spec.Image)
	if err != nil {
		return h, err
	}
	env, err := sandboxEnv(img.Env, spec.Env)
	if err != nil {
		return h, err
	}
	start := time.Now()
	log := p.log.With("sandbox_id", spec.SandboxID)

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	dir := p.dir(spec.SandboxID)
	if err := hostproc.MkdirSandbox(dir, spec.SandboxID); err != nil {
		return h, err
	}
	undo = append(undo, func() { forceRemoveAll(dir) })
	root := filepath.Join(dir, "root")
	mode, err := p.makeRoot(ctx, img.rootfs, dir, os.Geteuid() == 0)
	if err != nil {
		return h, err
	}
	if mode == rootOverlay {
		undo = append(undo, func() { unmountRoot(root) })
	}
	if err := prepareRoot(root); err != nil {
		return h, err
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		return h, errs.Wrap(errs.Internal, err, "create sandbox run dir")
	}
	console, err := hostproc.OpenConsole(dir)
	if err != nil {
		return h, err
	}
	defer console.Close()

	wrapper := filepath.Join(dir, "exec")
	_, shErr := os.Lstat(filepath.Join(root, "bin", "sh")) // Lstat: never follows the image's links on the host
	if err := os.WriteFile(wrapper, []byte(wrapperScript(bin, root, shErr == nil)), 0o700); err != nil {
		return h, errs.Wrap(errs.Internal, err, "write exec wrapper")
	}
	// The agent serves files from root (--root confines every path and
	// symlink to it) and runs each exec through the wrapper: see
	// docs/decisions/017-proot-rootfs.md for why it is not itself traced.
	args := []string{p.cfg.AgentPath, "--root", root, "--listen", "unix://" + p.socket(spec.SandboxID),
		"--workdir", workdir, "--exec-wrapper", wrapper}
	var cmd *exec.Cmd
	if p.cgroups != nil {
		procs, err := p.cgroups.create(spec.SandboxID, memMB, cpus, pids)
		if err != nil {
			return h, errs.Wrap(errs.Internal, err, "create sandbox cgroups")
		}
		undo = append(undo, func() { p.cgroups.remove(spec.SandboxID) })
		cmd = exec.Command("/bin/sh", append([]string{"-c", joinScript, "sh", strings.Join(procs, " ")}, args...)...)
	} else {
		cmd = exec.Command(args[0], args[1:]...)
	}
	cmd.Env = env
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return h, errs.Wrap(errs.Unavailable, err, "start proot sandbox agent")
	}
	pr := hostproc.Reap(cmd)
	undo = append(undo, func() {
		p.killTree(context.Background(), spec.SandboxID, pr.PID)
		select {
		case <-pr.Done:
		case <-time.After(5 * time.Second):
		}
	})
	p.mu.Lock()
	p.procs[spec.SandboxID] = pr
	p.mu.Unlock()
	undo = append(undo, func() {
		p.mu.Lock()
		delete(p.procs, spec.SandboxID)
		p.mu.Unlock()
	})

	ac := agent.NewUnixClient(p.socket(spec.SandboxID))
	undo = append(undo, ac.Close)
	if err := hostproc.WaitReady(ctx, ac, pr, filepath.Join(dir, hostproc.ConsoleLog), "proot agent"); err != nil {
		return h, err
	}
	st := state{
		SandboxID: spec.SandboxID, ServerID: p.cfg.ServerID, PID: pr.PID, Root: root,
		Image: spec.Image, ImageID: img.ID, StartedAt: time.Now().UTC(), Labels: spec.Labels,
	}
	if err := writeState(dir, st); err != nil {
		return h, errs.Wrap(errs.Internal, err, "write proot state")
	}
	p.agents.Put(spec.SandboxID, ac)
	log.Info("proot sandbox ready", "pid", pr.PID, "image", spec.Image, "rootfs", mode, "ms", time.Since(start).Milliseconds())
	return p.handle(st), nil
}

// wrapperScript is the host script the agent runs every exec through
// (--exec-wrapper): `exec WORKDIR ARGV...` becomes a fresh proot on the
// sandbox's root with the host's /proc and /dev (PRoot needs them; it is no
// boundary). As non-root, -0 makes the sandbox see itself as root, as in
// containers. -v -1 keeps proot's own notes out of the command's stderr.
//
// proot exits 255 when its tracee dies of a signal, losing the signal; so
// when the image has /bin/sh, argv runs under `sh -c '"$@"; ... exit $rc'`,
// which turns a death by signal N into exit 128+N like a container's exec.
// Debian's proot 5.1 has no --kill-on-exit: it waits for every process the
// exec started, and Destroy kills the tree through the cgroup or session.
// So the inner sh reports the command's own exit code on fd 3, the agent's
// status pipe (closed for the command itself): `server &` then returns at
// once, as in a container, while proot stays to translate for the server.
func wrapperScript(bin, root string, innerShell bool) string {
	zero := ""
	if os.Geteuid() != 0 {
		zero = " -0"
	}
	inner := ""
	if innerShell {
		inner = ` /bin/sh -c '"$@" 3>&-; rc=$?; { echo $rc >&3; } 2>/dev/null; exit $rc' sh`
	}
	return "#!/bin/sh\n# One exec of a StacyVM proot sandbox: WORKDIR ARGV... (written by the proot provider).\n" +
		"wd=$1\nshift\nexec " + shQuote(bin) + " -v -1 -r " + shQuote(root) + " -b /proc -b /dev" + zero + " -w \"$wd\"" + inner + " \"$@\"\n"
}

// shQuote single-quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// prepareRoot creates /workspace and /tmp inside the copied root through
// os.Root, so a symlink in the image (say /workspace -> /etc) can never
// make the host write outside the sandbox's root.
func prepareRoot(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "open sandbox root")
	}
	defer r.Close()
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"workspace", 0o755}, {"tmp", 0o1777}, {"root", 0o700}} {
		fi, err := r.Lstat(d.name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := r.Mkdir(d.name, d.mode.Perm()); err != nil {
				return errs.Wrap(errs.Internal, err, "create /%s in the sandbox", d.name)
			}
			if err := r.Chmod(d.name, d.mode); err != nil {
				return errs.Wrap(errs.Internal, err, "chmod /%s in the sandbox", d.name)
			}
		case err != nil:
			return errs.Wrap(errs.Internal, err, "stat /%s in the sandbox", d.name)
		case !fi.IsDir() && d.name == "workspace":
			return errs.New(errs.Invalid, "the image's /workspace is not a directory")
		}
	}
	return nil
}

// sandboxEnv is the agent's whole environment: the image's, then the
// spec's; never the server's own, which may hold secrets.
func sandboxEnv(image []string, spec map[string]string) ([]string, error) {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
	for _, kv := range image {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(spec[k], "\x00") {
			return nil, errs.New(errs.Invalid, "invalid environment variable %q", k)
		}
		if strings.HasPrefix(k, "PROOT_") {
			return nil, errs.New(errs.Invalid, "environment variable %q is reserved (it configures proot itself)", k)
		}
		env[k] = spec[k]
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}
