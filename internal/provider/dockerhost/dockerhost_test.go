package dockerhost_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
)

// Unpack against the real engine: a local image's files land in the
// directory, and an image the engine does not have is Invalid with the
// caller's wording.
func TestUnpack(t *testing.T) {
	cli, err := dockerhost.NewClient("")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	label := "stacyvm.dockerhost_test." + strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	if err := dockerhost.Unpack(ctx, cli, "stacyvm/busybox:latest", dir, label, "cannot be exported"); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "bin", "sh")); err != nil || fi.Size() == 0 && fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("unpacked image has no /bin/sh: %v", err)
	}
	f := client.Filters{}
	f.Add("label", label+"=1")
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil || len(res.Items) != 0 {
		t.Fatalf("export containers left behind: %d, %v", len(res.Items), err)
	}
	err = dockerhost.Unpack(ctx, cli, "stacyvm/no-such-image:never", t.TempDir(), label, "cannot be converted")
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "image stacyvm/no-such-image:never cannot be converted") {
		t.Fatalf("Unpack(missing image) = %v, want Invalid", err)
	}
}
