package docker

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// readyTimeout bounds the wait for the agent's first answer.
const readyTimeout = 30 * time.Second

// cleanupTimeout bounds the rollback of a failed create, which runs even
// when the caller's context is already cancelled.
const cleanupTimeout = 15 * time.Second

// Create makes the sandbox's host dir, creates and starts the container, and
// returns once the agent answers a ping. On failure everything created so far
// is removed in reverse order.
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (h provider.Handle, err error) {
	if err := validID(spec.SandboxID); err != nil {
		return h, err
	}
	cfg, hc, err := p.containerConfig(spec)
	if err != nil {
		return h, err
	}
	if err := p.runtimeUsable(ctx); err != nil {
		return h, err
	}
	if err := p.ensureImage(ctx, spec.Image); err != nil {
		return h, err
	}
	start := time.Now()
	log := p.log.With("sandbox_id", spec.SandboxID)

	var undo []func(context.Context)
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](cctx)
		}
	}()

	dir := p.sandboxDir(spec.SandboxID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if os.IsExist(err) {
			return h, errs.New(errs.Conflict, "sandbox %s already has a host directory", spec.SandboxID)
		}
		return h, errs.Wrap(errs.Internal, err, "create sandbox host dir")
	}
	undo = append(undo, func(context.Context) { os.RemoveAll(dir) })
	if p.cfg.User != "" {
		// A non-root agent must be able to create its socket here; the
		// parent <DataDir>/sb stays 0700, so other host users still cannot.
		if err := os.Chmod(dir, 0o777); err != nil {
			return h, errs.Wrap(errs.Internal, err, "chmod sandbox host dir")
		}
	}

	name := containerName(spec.SandboxID)
	res, err := p.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	if err != nil {
		return h, classify(ctx, err, fmt.Sprintf("create container for sandbox %s", spec.SandboxID))
	}
	id := res.ID
	undo = append(undo, func(cctx context.Context) {
		if _, err := p.cli.ContainerRemove(cctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			log.Warn("rollback: remove container", "container", id, "err", err)
		}
	})
	if _, err := p.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return h, classify(ctx, err, fmt.Sprintf("start container for sandbox %s", spec.SandboxID))
	}
	sock := socketPath(p.cfg.DataDir, spec.SandboxID)
	ac := agent.NewUnixClient(sock)
	undo = append(undo, func(context.Context) { ac.Close() })
	if err := p.waitReady(ctx, id, ac); err != nil {
		return h, err
	}
	p.mu.Lock()
	if old := p.agents[spec.SandboxID]; old != nil {
		old.Close()
	}
	p.agents[spec.SandboxID] = ac
	p.mu.Unlock()
	log.Info("sandbox container ready", "container", shortID(id), "image", spec.Image, "ms", time.Since(start).Milliseconds())
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: spec.SandboxID,
		RuntimeID: id,
		Data:      map[string]string{"socket": sock, "container": name},
	}, nil
}

// ensureImage checks the image is local and, if the policy allows, pulls it.
func (p *Provider) ensureImage(ctx context.Context, ref string) error {
	if ref == "" {
		return errs.New(errs.Invalid, "image is required")
	}
	_, err := p.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return classify(ctx, err, fmt.Sprintf("inspect image %s", ref))
	}
	if p.cfg.Pull == PullNever {
		return errs.New(errs.Invalid, "image %s not found locally (pulling disabled)", ref)
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.PullTimeout)
	defer cancel()
	p.log.Info("pulling missing image", "image", ref)
	rc, err := p.cli.ImagePull(pctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = rc.Wait(pctx)
		rc.Close()
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return classify(ctx, err, fmt.Sprintf("pull image %s", ref))
	}
	if pctx.Err() != nil {
		return errs.Wrap(errs.Invalid, err, "image %s not found locally and could not be pulled: timed out after %s", ref, p.cfg.PullTimeout)
	}
	if client.IsErrConnectionFailed(err) {
		return errs.Wrap(errs.Unavailable, err, "docker engine unreachable")
	}
	return errs.Wrap(errs.Invalid, err, "image %s not found locally and could not be pulled: %s", ref, shortReason(err))
}

// shortReason is the first line of an engine error, bounded for messages.
func shortReason(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func (p *Provider) containerConfig(spec provider.Spec) (*container.Config, *container.HostConfig, error) {
	network := spec.Network
	if network == "" {
		network = p.cfg.DefaultNetwork
	}
	if network != provider.NetworkNone && network != provider.NetworkBridge {
		return nil, nil, errs.New(errs.Invalid, "network %q is not none or bridge", spec.Network)
	}
	if modes := p.cfg.NetworkModes; modes != nil && !slices.Contains(modes, network) {
		return nil, nil, errs.New(errs.Invalid, "provider %s does not support network %q (supported: %s)",
			p.Name(), network, strings.Join(modes, ", "))
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
	if memMB < 6 || cpus < 0 || pids < 0 {
		return nil, nil, errs.New(errs.Invalid, "resource limits out of range (memory >= 6 MB, cpus >= 0, pids >= 0)")
	}
	if memMB < p.cfg.MinMemoryMB {
		return nil, nil, errs.New(errs.Invalid, "provider %s needs at least %d MB of memory per sandbox (asked for %d MB)",
			p.Name(), p.cfg.MinMemoryMB, memMB)
	}
	if pids < p.cfg.MinPidsLimit {
		return nil, nil, errs.New(errs.Invalid, "provider %s needs a pids limit of at least %d (asked for %d): its runtime counts its own threads",
			p.Name(), p.cfg.MinPidsLimit, pids)
	}
	env := make([]string, 0, len(spec.Env))
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(spec.Env[k], "\x00") {
			return nil, nil, errs.New(errs.Invalid, "invalid environment variable %q", k)
		}
		env = append(env, k+"="+spec.Env[k])
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[provider.LabelManaged] = "true"
	labels[provider.LabelSandbox] = spec.SandboxID
	labels[provider.LabelServer] = p.cfg.ServerID
	labels[labelProvider] = p.cfg.Name

	cfg := &container.Config{
		Image:      spec.Image,
		Entrypoint: []string{agentInContainer, "--listen", "unix://" + runDirInContainer + "/" + socketName, "--workdir", workdir},
		Cmd:        []string{},
		Env:        env,
		Labels:     labels,
		User:       p.cfg.User,
		WorkingDir: "/",
	}
	mem := int64(memMB) << 20
	secOpt := []string{"no-new-privileges:true"}
	if p.seccomp != "" {
		secOpt = append(secOpt, "seccomp="+p.seccomp)
	}
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(network),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    secOpt,
		ReadonlyRootfs: p.cfg.ReadOnlyRootfs,
		Runtime:        p.cfg.Runtime,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			Memory:     mem,
			MemorySwap: mem,
			NanoCPUs:   int64(cpus * 1e9),
			PidsLimit:  &pids,
		},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: p.cfg.AgentPath, Target: agentInContainer, ReadOnly: true},
			{Type: mount.TypeBind, Source: p.sandboxDir(spec.SandboxID), Target: runDirInContainer},
		},
	}
	if p.cfg.ReadOnlyRootfs {
		hc.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev", workdir: "rw,nosuid,nodev"}
	}
	return cfg, hc, nil
}

// waitReady polls the agent with a short backoff until it answers, the
// container exits (its last log lines go into the error), ctx ends, or
// readyTimeout passes.
func (p *Provider) waitReady(ctx context.Context, id string, ac *agent.Client) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	delay := 2 * time.Millisecond
	lastInspect := time.Now()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := ac.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		if time.Since(lastInspect) > 100*time.Millisecond {
			lastInspect = time.Now()
			if err := p.checkAlive(ctx, id); err != nil {
				return err
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if alive := p.checkAlive(context.WithoutCancel(ctx), id); alive != nil {
				return alive
			}
			return errs.Wrap(errs.Timeout, err, "sandbox agent did not answer in time")
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// checkAlive returns an error (with the container's last log lines) when
// the container is no longer running.
func (p *Provider) checkAlive(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := p.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return classify(ctx, err, "inspect starting container")
	}
	st := res.Container.State
	if st == nil || st.Running {
		return nil
	}
	lines, _ := p.logs(ctx, id, 20)
	return errs.New(errs.Internal, "sandbox container exited during start (status %s, exit code %d): %s",
		st.Status, st.ExitCode, strings.Join(lines, " | "))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
