// Package dockerhost holds what the providers share about the local Docker
// engine: a client for an engine address (docker, proot, vm), and
// unpacking an image's file system into a directory, for the providers
// that make sandboxes from local images without running containers
// (proot, vm).
package dockerhost

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// NewClient returns a client of the engine at host, or of the one
// Docker's own DOCKER_HOST/DOCKER_TLS_* conventions name when host is ""
// (the one documented exception to "only config reads the environment").
func NewClient(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = []client.Opt{client.WithHost(host)}
	}
	return client.New(opts...)
}

// Unpack writes ref's file system into the existing directory dir: a
// temporary container labelled label=1 is created (never started),
// exported and removed. A ref the engine cannot make a container of is
// Invalid "image <ref> <refused>".
func Unpack(ctx context.Context, cli *client.Client, ref, dir, label, refused string) error {
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		// Never started; an entrypoint is needed for images that have none.
		Config: &container.Config{Image: ref, Entrypoint: []string{"/nonexistent"}, Labels: map[string]string{label: "1"}},
	})
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "image %s %s", ref, refused)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rcancel()
		cli.ContainerRemove(rctx, res.ID, client.ContainerRemoveOptions{Force: true})
	}()
	rc, err := cli.ContainerExport(ctx, res.ID, client.ContainerExportOptions{})
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "export image %s", ref)
	}
	defer rc.Close()
	// GNU tar, as root, restores owners and modes exactly; it refuses
	// members that climb out with "..", and absolute names are made
	// relative. Absolute symlinks stay links: the host never writes
	// through them.
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "-x", "-C", dir)
	tar.Stdin = rc
	var stderr bytes.Buffer
	tar.Stderr = &hostproc.Limited{W: &stderr, N: 4096}
	if err := tar.Run(); err != nil {
		return errs.Wrap(errs.Internal, err, "unpack image %s: %s", ref, strings.TrimSpace(stderr.String()))
	}
	return nil
}
