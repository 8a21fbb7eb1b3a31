package mock

import (
	"context"
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

// Create makes <DataDir>/mock/<id>/root, starts the agent in its own
// session with a clean environment, waits for its first answer and records
// handle.json. On failure the process is killed and the directory removed.
// Image and resource limits are accepted and ignored; the network mode is
// validated but not enforced (processes share the host's network).
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (h provider.Handle, err error) {
	if err := validID(spec.SandboxID); err != nil {
		return h, err
	}
	if n := spec.Network; n != "" && n != provider.NetworkNone && n != provider.NetworkBridge {
		return h, errs.New(errs.Invalid, "network %q is not none or bridge", n)
	}
	if p.cfg.FailCreate != nil {
		if err := p.cfg.FailCreate(spec); err != nil {
			return h, err
		}
	}
	if p.cfg.CreateDelay > 0 {
		t := time.NewTimer(p.cfg.CreateDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return h, errs.Wrap(errs.Unavailable, ctx.Err(), "create cancelled")
		case <-t.C:
		}
	}
	dir := p.dir(spec.SandboxID)
	root := filepath.Join(dir, "root")
	env, err := cleanEnv(spec.Env, filepath.Join(root, "workspace"))
	if err != nil {
		return h, err
	}
	if err := hostproc.MkdirSandbox(dir, spec.SandboxID); err != nil {
		return h, err
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { os.RemoveAll(dir) })
	for _, d := range []string{"workspace", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return h, errs.Wrap(errs.Internal, err, "create sandbox root")
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return h, errs.Wrap(errs.Internal, err, "create sandbox root")
	}
	console, err := hostproc.OpenConsole(dir)
	if err != nil {
		return h, err
	}
	sock := p.socket(spec.SandboxID)
	cmd := exec.Command(p.cfg.AgentPath, "--root", root, "--listen", "unix://"+sock, "--workdir", "/workspace")
	cmd.Env = env
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	console.Close()
	if err != nil {
		return h, errs.Wrap(errs.Unavailable, err, "start mock agent")
	}
	pr := hostproc.Reap(cmd)
	undo = append(undo, func() {
		hostproc.KillSession(pr.PID)
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

	ac := agent.NewUnixClient(sock)
	undo = append(undo, ac.Close)
	if err := hostproc.WaitReady(ctx, ac, pr, filepath.Join(dir, hostproc.ConsoleLog), "mock agent"); err != nil {
		return h, err
	}
	st := state{
		SandboxID: spec.SandboxID, ServerID: p.cfg.ServerID, PID: pr.PID,
		Socket: sock, Root: root, StartedAt: time.Now().UTC(), Labels: spec.Labels,
	}
	if err := writeState(dir, st); err != nil {
		return h, errs.Wrap(errs.Internal, err, "write mock state")
	}
	p.agents.Put(spec.SandboxID, ac)
	p.log.Info("mock sandbox ready", "sandbox_id", spec.SandboxID, "pid", pr.PID)
	return p.handle(st), nil
}

// cleanEnv is the agent's whole environment: never the server's own, which
// may hold secrets.
func cleanEnv(spec map[string]string, home string) ([]string, error) {
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"}
	for _, k := range slices.Sorted(maps.Keys(spec)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(spec[k], "\x00") {
			return nil, errs.New(errs.Invalid, "invalid environment variable %q", k)
		}
		env[k] = spec[k]
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}
