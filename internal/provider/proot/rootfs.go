package proot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// image is one cached, exported image.
type image struct {
	ID      string   `json:"id"` // "sha256:..."
	Ref     string   `json:"ref"`
	Env     []string `json:"env"`
	Workdir string   `json:"workdir"`
	rootfs  string
}

// exportTimeout bounds exporting and unpacking one image.
const exportTimeout = 5 * time.Minute

// image returns ref's exported filesystem, exporting it once per image id:
// a temporary container is created (never started), exported and
// unpacked into images/.tmp-*, then renamed into place, so a crash never
// leaves a half-unpacked cache entry.
func (p *Provider) image(ctx context.Context, ref string) (image, error) {
	if ref == "" {
		return image{}, errs.New(errs.Invalid, "image is required")
	}
	insp, err := p.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return image{}, errs.New(errs.Invalid, "image %s not found in the local Docker engine (proot sandboxes are made from local images)", ref)
	}
	if err != nil {
		if client.IsErrConnectionFailed(err) {
			return image{}, errs.Wrap(errs.Unavailable, err, "docker engine unreachable: proot needs it to export image %s", ref)
		}
		return image{}, errs.Wrap(errs.Unavailable, err, "inspect image %s", ref)
	}
	id := insp.ID
	key := strings.TrimPrefix(id, "sha256:")
	if len(key) < 12 || strings.ContainsAny(key, "/.") {
		return image{}, errs.New(errs.Internal, "unexpected image id %q", id)
	}
	dir := filepath.Join(p.cfg.DataDir, "images", key)

	p.imgMu.Lock()
	mu := p.building[key]
	if mu == nil {
		mu = &sync.Mutex{}
		p.building[key] = mu
	}
	p.imgMu.Unlock()
	mu.Lock()
	defer mu.Unlock()

	if img, err := readImage(dir); err == nil {
		return img, nil
	}
	img := image{ID: id, Ref: ref}
	if c := insp.Config; c != nil {
		img.Env, img.Workdir = c.Env, c.WorkingDir
	}
	start := time.Now()
	if err := p.export(ctx, ref, img, dir); err != nil {
		return image{}, err
	}
	p.log.Info("image exported for proot", "image", ref, "id", key[:12], "ms", time.Since(start).Milliseconds())
	return readImage(dir)
}

func readImage(dir string) (image, error) {
	var img image
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return img, err
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, err
	}
	img.rootfs = filepath.Join(dir, "rootfs")
	return img, nil
}

func (p *Provider) export(ctx context.Context, ref string, img image, dir string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	tmp := filepath.Join(p.cfg.DataDir, "images", ".tmp-"+randHex())
	defer func() {
		if err != nil {
			forceRemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
		return errs.Wrap(errs.Internal, err, "create image cache dir")
	}
	if err := dockerhost.Unpack(ctx, p.cli, ref, filepath.Join(tmp, "rootfs"), "stacyvm.proot_export", "cannot be exported"); err != nil {
		return err
	}
	meta, _ := json.Marshal(img)
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), meta, 0o600); err != nil {
		return errs.Wrap(errs.Internal, err, "write image meta")
	}
	if err := os.Rename(tmp, dir); err != nil {
		return errs.Wrap(errs.Internal, err, "install image cache entry")
	}
	return nil
}

// How a sandbox's root was made.
const (
	rootOverlay = "overlay" // overlayfs: image rootfs as the lower layer, writes in sb/<id>/upper
	rootCopy    = "copy"    // cp -a --reflink=auto of the image rootfs
)

// makeRoot gives the sandbox in dir its own root at dir/root, copy-on-write:
// an overlayfs mount when the server may mount (root, overlay in the
// kernel): about 10 ms whatever the image size; otherwise a copy that
// shares blocks where the filesystem reflinks (btrfs, xfs) and is a full
// copy elsewhere (measured on ext4: busybox 2 MB ~50 ms, python 124 MB
// 0.7-3.8 s). See docs/decisions/017-proot-rootfs.md.
func (p *Provider) makeRoot(ctx context.Context, image, dir string, tryOverlay bool) (string, error) {
	root := filepath.Join(dir, "root")
	if tryOverlay {
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{root, upper, work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return "", errs.Wrap(errs.Internal, err, "create sandbox root dirs")
			}
		}
		opts := "lowerdir=" + image + ",upperdir=" + upper + ",workdir=" + work
		if !strings.ContainsAny(image+upper+work, ",:") { // separators of overlay's options
			err := syscall.Mount("overlay", root, "overlay", syscall.MS_NODEV, opts)
			if err == nil {
				return rootOverlay, nil
			}
			p.log.Debug("overlayfs unavailable; copying the rootfs", "err", err)
		}
		for _, d := range []string{root, upper, work} {
			os.Remove(d)
		}
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", image, root)
	var stderr bytes.Buffer
	cmd.Stderr = &hostproc.Limited{W: &stderr, N: 4096}
	if err := cmd.Run(); err != nil {
		return "", errs.Wrap(errs.Internal, err, "copy rootfs: %s", strings.TrimSpace(stderr.String()))
	}
	return rootCopy, nil
}

// unmountRoot detaches an overlay root (no-op when root is not a mount).
func unmountRoot(root string) {
	syscall.Unmount(root, syscall.MNT_DETACH)
}

// forceRemoveAll removes path even when unpacked image directories lack
// write permission for their owner (possible when not running as root).
func forceRemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

func randHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
