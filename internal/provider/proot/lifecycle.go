package proot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Inspect reads handle.json and checks its pid is alive and still this
// sandbox's agent (its command line names this sandbox's root), so a
// reused pid is never mistaken for the sandbox.
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	st, err := p.readState(h.SandboxID)
	if errors.Is(err, os.ErrNotExist) {
		return provider.Status{State: provider.RuntimeMissing}, nil
	}
	if err != nil {
		return provider.Status{}, err
	}
	if p.isOurs(st) {
		return provider.Status{State: provider.RuntimeRunning, StartedAt: st.StartedAt}, nil
	}
	code := -1
	p.mu.Lock()
	pr := p.procs[h.SandboxID]
	p.mu.Unlock()
	if pr != nil {
		select {
		case <-pr.done:
			code = pr.code
		default:
		}
	}
	return provider.Status{State: provider.RuntimeStopped, StartedAt: st.StartedAt, ExitCode: code, Detail: "sandbox agent is gone"}, nil
}

// isOurs reports whether st.PID is a live process running our agent on
// st.Root.
func (p *Provider) isOurs(st state) bool {
	if st.PID <= 1 {
		return false
	}
	if s, ok := procStat(st.PID); !ok || s.state == "Z" {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(st.PID) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) == 0 || args[0] != p.cfg.AgentPath {
		return false
	}
	i := slices.Index(args, "--root")
	return i >= 0 && i+1 < len(args) && args[i+1] == st.Root && st.Root == filepath.Join(p.dir(st.SandboxID), "root")
}

// Destroy kills the sandbox's whole process tree (its cgroup, else its
// session), then removes its cgroups and directory. Missing is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	start := time.Now()
	p.mu.Lock()
	ac := p.agents[h.SandboxID]
	delete(p.agents, h.SandboxID)
	pr := p.procs[h.SandboxID]
	delete(p.procs, h.SandboxID)
	p.mu.Unlock()
	if ac != nil {
		ac.Close()
	}
	st, err := p.readState(h.SandboxID)
	pid := 0
	switch {
	case err == nil && p.isOurs(st):
		pid = st.PID
	case pr != nil:
		pid = pr.pid
	}
	p.killTree(ctx, h.SandboxID, pid)
	if pr != nil {
		select {
		case <-pr.done:
		case <-ctx.Done():
			return errs.Wrap(errs.Timeout, ctx.Err(), "sandbox agent did not exit")
		}
	} else if pid > 0 {
		waitGone(ctx, pid)
	}
	if p.cgroups != nil {
		p.cgroups.remove(h.SandboxID)
	}
	if _, err := os.Lstat(p.dir(h.SandboxID)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unmountRoot(filepath.Join(p.dir(h.SandboxID), "root")) // before removing: never delete through a live mount
	if err := forceRemoveAll(p.dir(h.SandboxID)); err != nil {
		return errs.Wrap(errs.Internal, err, "remove proot sandbox dir")
	}
	p.log.Info("proot sandbox destroyed", "sandbox_id", h.SandboxID, "ms", time.Since(start).Milliseconds())
	return nil
}

// killTree SIGKILLs every process of the sandbox: the members of its pids
// cgroup (which catches processes that left the session), and the session
// proot leads.
func (p *Provider) killTree(ctx context.Context, id string, sid int) {
	if sid > 1 {
		killSession(sid)
	}
	if p.cgroups != nil {
		p.cgroups.kill(ctx, id)
	}
}

// List returns the sandboxes whose handle.json names this server.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	ents, err := os.ReadDir(filepath.Join(p.cfg.DataDir, "sb"))
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "read proot data dir")
	}
	out := []provider.Handle{}
	for _, e := range ents {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		st, err := p.readState(e.Name())
		if err != nil || st.ServerID != p.cfg.ServerID || st.SandboxID != e.Name() {
			continue // being created, corrupt, or another server's
		}
		out = append(out, p.handle(st))
	}
	return out, nil
}

// Agent returns the cached client for h's agent; NotFound once destroyed.
// The socket path is derived from the data dir and the validated id, never
// read from the handle.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.agents[h.SandboxID]; c != nil {
		return c, nil
	}
	sock := p.socket(h.SandboxID)
	if _, err := os.Stat(sock); err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "sandbox %s has no agent socket", h.SandboxID)
	}
	c := agent.NewUnixClient(sock)
	p.agents[h.SandboxID] = c
	return c, nil
}

// Logs returns the last lines of the agent's console.log.
func (p *Provider) Logs(ctx context.Context, h provider.Handle, lines int) ([]string, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	if lines <= 0 {
		lines = 100
	}
	out, err := tailFile(filepath.Join(p.dir(h.SandboxID), "console.log"), lines)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.New(errs.NotFound, "sandbox %s has no console log", h.SandboxID)
	}
	return out, err
}

func tailFile(path string, lines int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const window = 1 << 20
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "read console log")
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{}, nil
	}
	all := strings.Split(string(b), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return all, nil
}

type pstat struct {
	state   string
	session int
}

// procStat parses /proc/<pid>/stat (fields after the parenthesised comm).
func procStat(pid int) (pstat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return pstat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return pstat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return pstat{}, false
	}
	sid, _ := strconv.Atoi(f[3])
	return pstat{state: f[0], session: sid}, true
}

// killSession SIGKILLs the session leader sid and every process in its
// session.
func killSession(sid int) {
	if sid <= 1 {
		return
	}
	syscall.Kill(-sid, syscall.SIGKILL)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := procStat(pid); ok && s.session == sid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitGone waits (bounded) until pid has exited or is a zombie.
func waitGone(ctx context.Context, pid int) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s, ok := procStat(pid); !ok || s.state == "Z" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
