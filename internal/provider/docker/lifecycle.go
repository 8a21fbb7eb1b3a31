package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// ref is how the engine knows h's container: its id, else its name.
func ref(h provider.Handle) string {
	if h.RuntimeID != "" {
		return h.RuntimeID
	}
	return containerName(h.SandboxID)
}

// Inspect reports running, stopped (with exit code) or missing.
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	res, err := p.cli.ContainerInspect(ctx, ref(h), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return provider.Status{State: provider.RuntimeMissing}, nil
	}
	if err != nil {
		return provider.Status{}, classify(ctx, err, "inspect sandbox container")
	}
	st := res.Container.State
	if st == nil {
		return provider.Status{State: provider.RuntimeMissing, Detail: "no state"}, nil
	}
	started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
	if st.Running && !st.Paused && !st.Restarting {
		return provider.Status{State: provider.RuntimeRunning, StartedAt: started}, nil
	}
	detail := string(st.Status)
	if st.OOMKilled {
		detail += ", oom-killed"
	}
	if st.Error != "" {
		detail += ": " + st.Error
	}
	return provider.Status{State: provider.RuntimeStopped, StartedAt: started, ExitCode: st.ExitCode, Detail: detail}, nil
}

// Destroy force-removes the container (SIGKILL, then remove), its host dir
// and the cached agent client. A missing container is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	p.dropAgent(h.SandboxID)
	start := time.Now()
	_, err := p.cli.ContainerRemove(ctx, ref(h), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		// "removal already in progress" is a conflict: someone else is
		// destroying it, which is what we want.
		if !cerrdefs.IsConflict(err) {
			return classify(ctx, err, "remove sandbox container")
		}
	}
	if err := os.RemoveAll(p.sandboxDir(h.SandboxID)); err != nil {
		return errs.Wrap(errs.Internal, err, "remove sandbox host dir")
	}
	p.log.Info("sandbox container destroyed", "sandbox_id", h.SandboxID, "ms", time.Since(start).Milliseconds())
	return nil
}

func (p *Provider) dropAgent(id string) {
	p.mu.Lock()
	c := p.agents[id]
	delete(p.agents, id)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// labelProvider names the provider (flavour) that created a container:
// docker, gvisor and kata share one engine and one server id.
const labelProvider = "stacyvm.provider"

// owns reports whether a container with labels belongs to this flavour.
// Containers from before the label existed are the docker provider's.
func (p *Provider) owns(labels map[string]string) bool {
	name, ok := labels[labelProvider]
	if !ok {
		return p.cfg.Name == "docker"
	}
	return name == p.cfg.Name
}

// List returns every container labelled as ours (this server, this
// flavour), in any state.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	f := client.Filters{}
	f.Add("label", provider.LabelManaged+"=true", provider.LabelServer+"="+p.cfg.ServerID)
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, classify(ctx, err, "list sandbox containers")
	}
	out := make([]provider.Handle, 0, len(res.Items))
	for _, c := range res.Items {
		if !p.owns(c.Labels) {
			continue // another flavour's (gvisor, kata) on the same engine
		}
		id := c.Labels[provider.LabelSandbox]
		if validID(id) != nil {
			p.log.Warn("skipping managed container with a bad sandbox id label", "container", shortID(c.ID))
			continue
		}
		out = append(out, provider.Handle{
			Provider:  p.cfg.Name,
			SandboxID: id,
			RuntimeID: c.ID,
			Data:      map[string]string{"socket": socketPath(p.cfg.DataDir, id), "container": containerName(id)},
		})
	}
	return out, nil
}

// Agent returns the cached client for h's agent, creating it on first use.
// The socket path is derived from the data dir and the validated sandbox
// id, not read from the handle's data, so a stored handle cannot point the
// server at an arbitrary socket.
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
	sock := socketPath(p.cfg.DataDir, h.SandboxID)
	if _, err := os.Stat(sock); err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "sandbox %s has no agent socket", h.SandboxID)
	}
	c := agent.NewUnixClient(sock)
	p.agents[h.SandboxID] = c
	return c, nil
}

// Stats takes one one-shot sample (no 1 s wait for a second one). CPU
// percent (100 = one full CPU) is therefore the average since the container
// started; memory excludes reclaimable page cache, like `docker stats`.
func (p *Provider) Stats(ctx context.Context, h provider.Handle) (provider.Stats, error) {
	res, err := p.cli.ContainerStats(ctx, ref(h), client.ContainerStatsOptions{})
	if err != nil {
		return provider.Stats{}, classify(ctx, err, "read sandbox stats")
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return provider.Stats{}, errs.Wrap(errs.Unavailable, err, "decode sandbox stats")
	}
	out := provider.Stats{MemLimitBytes: s.MemoryStats.Limit}
	mem := s.MemoryStats.Usage
	// Like `docker stats`: page cache that can be dropped is not "used".
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < mem {
			mem -= v
			break
		}
	}
	out.MemBytes = mem
	if st, err := p.Inspect(ctx, h); err == nil && !st.StartedAt.IsZero() && !s.Read.IsZero() {
		if el := s.Read.Sub(st.StartedAt); el > 0 {
			out.CPUPercent = float64(s.CPUStats.CPUUsage.TotalUsage) / float64(el.Nanoseconds()) * 100
		}
	}
	return out, nil
}

// Logs returns the last lines of the container's console (the agent's own
// log), stdout and stderr merged.
func (p *Provider) Logs(ctx context.Context, h provider.Handle, lines int) ([]string, error) {
	return p.logs(ctx, ref(h), lines)
}

func (p *Provider) logs(ctx context.Context, id string, lines int) ([]string, error) {
	if lines <= 0 {
		lines = 100
	}
	rc, err := p.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return nil, classify(ctx, err, "read sandbox logs")
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: 4 << 20}
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && !errors.Is(err, errLimit) {
		return nil, errs.Wrap(errs.Unavailable, err, "read sandbox logs")
	}
	var out []string
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, strings.TrimRight(sc.Text(), "\r"))
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	return out, nil
}

var errLimit = fmt.Errorf("log output over limit")

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if len(b) > l.n {
		return 0, errLimit
	}
	l.n -= len(b)
	return l.w.Write(b)
}
