package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

const (
	busybox = "stacyvm/busybox"
	// benchLabel marks every baseline container; its value is the run id so
	// that two runs never remove each other's containers.
	benchLabel = "stacyvm.bench"
)

// hardeningFlags are the docker run flags equivalent to the hardening our
// docker provider applies (cap-drop ALL, no-new-privileges, pids, memory
// without swap, one CPU, no network).
var hardeningFlags = []string{
	"--cap-drop", "ALL", "--security-opt", "no-new-privileges",
	"--pids-limit", "256", "--memory", "512m", "--memory-swap", "512m",
	"--cpus", "1", "--network", "none",
}

// Baseline drives raw Docker: the docker CLI and the Engine API (moby
// client), with containers hardened like ours and labelled with the run id.
type Baseline struct {
	runID string
	cli   *client.Client
}

// NewBaseline connects to the engine named by DOCKER_HOST (or the default
// socket).
func NewBaseline(runID string) (*Baseline, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	return &Baseline{runID: runID, cli: c}, nil
}

// Close removes every container this run created and closes the client.
func (b *Baseline) Close(ctx context.Context) {
	removeByLabel(ctx, benchLabel+"="+b.runID)
	b.cli.Close()
}

// RunCLI is `docker run -d` of a hardened busybox container that sleeps.
func (b *Baseline) RunCLI(ctx context.Context) (string, error) {
	args := append([]string{"run", "-d", "--label", benchLabel + "=" + b.runID}, hardeningFlags...)
	args = append(args, busybox, "sleep", "86400")
	out, err := dockerCmd(ctx, nil, args...)
	return strings.TrimSpace(out), err
}

// ExecCLI is `docker exec id argv...`; it returns the stdout byte count.
func (b *Baseline) ExecCLI(ctx context.Context, id string, argv ...string) (int64, error) {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"exec", id}, argv...)...)
	var cw countWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cw, &stderr
	if err := cmd.Run(); err != nil {
		return cw.n, fmt.Errorf("docker exec %v: %v: %s", argv, err, stderr.String())
	}
	return cw.n, nil
}

// CopyIn is `docker cp host id:path`.
func (b *Baseline) CopyIn(ctx context.Context, host, id, path string) error {
	_, err := dockerCmd(ctx, nil, "cp", host, id+":"+path)
	return err
}

// CopyOut is `docker cp id:path host`.
func (b *Baseline) CopyOut(ctx context.Context, id, path, host string) error {
	_, err := dockerCmd(ctx, nil, "cp", id+":"+path, host)
	return err
}

// hostConfig is the Engine API form of hardeningFlags.
func hostConfig() *container.HostConfig {
	pids := int64(256)
	return &container.HostConfig{
		NetworkMode: "none",
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges:true"},
		Resources: container.Resources{
			Memory: 512 << 20, MemorySwap: 512 << 20, NanoCPUs: 1e9, PidsLimit: &pids,
		},
	}
}

// CreateAPI creates and starts a hardened container through the Engine API.
func (b *Baseline) CreateAPI(ctx context.Context) (string, error) {
	res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: busybox, Cmd: []string{"sleep", "86400"},
			Labels: map[string]string{benchLabel: b.runID},
		},
		HostConfig: hostConfig(),
	})
	if err != nil {
		return "", err
	}
	if _, err := b.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return res.ID, err
	}
	return res.ID, nil
}

// ExecAPI is exec create + start attached + inspect through the Engine API;
// it returns the stdout byte count.
func (b *Baseline) ExecAPI(ctx context.Context, id string, argv ...string) (int64, error) {
	cr, err := b.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, err
	}
	at, err := b.cli.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, err
	}
	var cw countWriter
	_, err = stdcopy.StdCopy(&cw, io.Discard, at.Reader)
	at.Close()
	if err != nil {
		return cw.n, err
	}
	ins, err := b.cli.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
	if err != nil {
		return cw.n, err
	}
	if ins.ExitCode != 0 || ins.Running {
		return cw.n, fmt.Errorf("exec %v: exit %d running=%v", argv, ins.ExitCode, ins.Running)
	}
	return cw.n, nil
}

// Remove force-removes one container (not timed by any section).
func (b *Baseline) Remove(ctx context.Context, id string) {
	if id == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	b.cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true})
}

// dockerCmd runs the docker CLI and returns its stdout.
func dockerCmd(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// removeByLabel force-removes every container carrying label (k=v).
func removeByLabel(ctx context.Context, label string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	out, _ := dockerCmd(ctx, nil, "ps", "-aq", "--filter", "label="+label)
	ids := strings.Fields(out)
	for len(ids) > 0 {
		n := min(len(ids), 50)
		dockerCmd(ctx, nil, append([]string{"rm", "-f"}, ids[:n]...)...)
		ids = ids[n:]
	}
}

// countWriter counts and discards.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// ListAPI lists the containers carrying label through the Engine API and
// returns how many there are.
func (b *Baseline) ListAPI(ctx context.Context, label string) (int, error) {
	res, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
	return len(res.Items), err
}
