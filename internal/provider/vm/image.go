package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// Image is a local Docker image converted to an ext4 root disk, cached per
// image id under <DataDir>/images/<id>/.
type Image struct {
	ID        string    `json:"id"` // "sha256:..."
	Ref       string    `json:"ref"`
	Env       []string  `json:"env"`
	Workdir   string    `json:"workdir"`
	SizeBytes int64     `json:"size_bytes"` // the disk's (sparse) size
	Built     time.Time `json:"built"`
	Rootfs    string    `json:"-"` // absolute path of rootfs.ext4
	Cached    bool      `json:"-"` // true when no conversion was needed
}

// Images converts local Docker images to VM root disks: the image's files
// are exported from a container that is created but never started, and
// mkfs.ext4 -d writes them into a sparse disk image (no loop mount, no
// privileges beyond reading the export). Safe for concurrent use; one
// conversion per image id at a time.
type Images struct {
	dir string
	cli *client.Client

	mu       sync.Mutex
	building map[string]*sync.Mutex
}

// NewImages returns a converter caching under dir, using the Docker engine
// behind cli.
func NewImages(dir string, cli *client.Client) *Images {
	return &Images{dir: dir, cli: cli, building: map[string]*sync.Mutex{}}
}

// Progress receives one line per conversion step; nil discards them.
type Progress func(format string, args ...any)

// diskHeadroom is the free space added to a root disk beyond the image's
// files: the sandbox's writable space (the disk is sparse, and each sandbox
// writes to its own copy-on-write overlay).
const diskHeadroom = 2 << 30

// maxImageBytes refuses images whose files exceed this size.
const maxImageBytes = 16 << 30

// convertTimeout bounds one export and mkfs.
const convertTimeout = 10 * time.Minute

// Get returns ref's root disk, converting the image on first use.
func (im *Images) Get(ctx context.Context, ref string, progress Progress) (Image, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if ref == "" {
		return Image{}, errs.New(errs.Invalid, "image is required")
	}
	if im.cli == nil {
		return Image{}, errs.New(errs.Unavailable, "no Docker engine configured: vm images are converted from local Docker images")
	}
	insp, err := im.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return Image{}, errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: not found in the local Docker engine", ref)
	}
	if err != nil {
		return Image{}, errs.Wrap(errs.Unavailable, err, "inspect image %s", ref)
	}
	if insp.Os != "" && insp.Os != "linux" || insp.Architecture != "" && insp.Architecture != "amd64" {
		return Image{}, errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: it is %s/%s, the microVM runs linux/amd64", ref, insp.Os, insp.Architecture)
	}
	if insp.Size > maxImageBytes {
		return Image{}, errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: %d bytes is over the %d byte limit", ref, insp.Size, int64(maxImageBytes))
	}
	key := strings.TrimPrefix(insp.ID, "sha256:")
	if len(key) < 12 || strings.ContainsAny(key, "/.") {
		return Image{}, errs.New(errs.Internal, "unexpected image id %q", insp.ID)
	}
	dir := filepath.Join(im.dir, key)

	im.mu.Lock()
	mu := im.building[key]
	if mu == nil {
		mu = &sync.Mutex{}
		im.building[key] = mu
	}
	im.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if img, err := readImage(dir); err == nil {
		img.Cached = true
		progress("image %s (%s) already converted: %s", ref, key[:12], img.Rootfs)
		return img, nil
	}
	img := Image{ID: insp.ID, Ref: ref}
	if c := insp.Config; c != nil {
		img.Env, img.Workdir = c.Env, c.WorkingDir
	}
	if err := im.convert(ctx, img, dir, progress); err != nil {
		return Image{}, err
	}
	return readImage(dir)
}

func readImage(dir string) (Image, error) {
	var img Image
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return img, err
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, err
	}
	img.Rootfs = filepath.Join(dir, "rootfs.ext4")
	if _, err := os.Stat(img.Rootfs); err != nil {
		return img, err
	}
	return img, nil
}

// convert exports ref into a temporary directory, builds the ext4 image
// next to it and renames the result into place, so a crash never leaves a
// half-built cache entry.
func (im *Images) convert(ctx context.Context, img Image, dir string, progress Progress) (err error) {
	ctx, cancel := context.WithTimeout(ctx, convertTimeout)
	defer cancel()
	start := time.Now()
	if err := os.MkdirAll(im.dir, 0o700); err != nil {
		return errs.Wrap(errs.Internal, err, "create image cache dir")
	}
	tmp, err := os.MkdirTemp(im.dir, ".tmp-")
	if err != nil {
		return errs.Wrap(errs.Internal, err, "create image cache dir")
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		return errs.Wrap(errs.Internal, err, "create image cache dir")
	}
	progress("exporting %s from the Docker engine", img.Ref)
	if err := im.export(ctx, img.Ref, root); err != nil {
		return err
	}
	// The mount points the guest's init needs, whatever the image has.
	for _, d := range []string{".stacyvm", "proc", "sys", "dev", "tmp", "run"} {
		p := filepath.Join(root, d)
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			return errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: /%s is not a directory", img.Ref, d)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return errs.Wrap(errs.Internal, err, "prepare rootfs")
		}
	}
	used, err := dirSize(root)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "measure exported image")
	}
	if used > maxImageBytes {
		return errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: %d bytes of files is over the %d byte limit", img.Ref, used, int64(maxImageBytes))
	}
	size := (used*5/4 + diskHeadroom + 1<<20 - 1) &^ (1<<20 - 1)
	progress("writing %d MiB of files into a %d MiB ext4 disk (mkfs.ext4 -d)", used>>20, size>>20)
	disk := filepath.Join(tmp, "rootfs.ext4")
	f, err := os.Create(disk)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "create disk image")
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return errs.Wrap(errs.Internal, err, "size disk image")
	}
	mkfs := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "stacyvm-root", "-m", "0",
		"-E", "root_owner=0:0", "-d", root, disk, strconv.FormatInt(size>>10, 10)+"k")
	var stderr bytes.Buffer
	mkfs.Stderr, mkfs.Stdout = &hostproc.Limited{W: &stderr, N: 4096}, &hostproc.Limited{W: &stderr, N: 4096}
	if err := mkfs.Run(); err != nil {
		if _, lerr := exec.LookPath("mkfs.ext4"); lerr != nil {
			return errs.New(errs.Unavailable, "mkfs.ext4 is missing: install e2fsprogs (scripts/ci-prepare.sh)")
		}
		return errs.New(errs.Invalid, "image %s cannot be converted to a VM root disk: mkfs.ext4 failed: %s", img.Ref, strings.TrimSpace(stderr.String()))
	}
	if err := os.RemoveAll(root); err != nil {
		return errs.Wrap(errs.Internal, err, "remove export")
	}
	img.SizeBytes, img.Built = size, time.Now().UTC()
	meta, _ := json.MarshalIndent(img, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), meta, 0o600); err != nil {
		return errs.Wrap(errs.Internal, err, "write image meta")
	}
	os.RemoveAll(dir) // a stale, incomplete entry
	if err := os.Rename(tmp, dir); err != nil {
		return errs.Wrap(errs.Internal, err, "install image cache entry")
	}
	progress("converted %s in %v: %s", img.Ref, time.Since(start).Round(time.Millisecond), filepath.Join(dir, "rootfs.ext4"))
	return nil
}

// export unpacks ref's file system into root.
func (im *Images) export(ctx context.Context, ref, root string) error {
	return dockerhost.Unpack(ctx, im.cli, ref, root, "stacyvm.vm_export", "cannot be converted to a VM root disk")
}

func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n += 4096
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// fmtBytes renders n in MiB for logs.
func fmtBytes(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// ConvertImage converts ref into the image cache of the vm provider whose
// data dir is dataDir (what `stacyvm build-image` does ahead of the first
// sandbox), using the Docker engine at dockerHost ("" = DOCKER_HOST or the
// default socket).
func ConvertImage(ctx context.Context, dataDir, dockerHost, ref string, progress Progress) (Image, error) {
	cli, err := dockerhost.NewClient(dockerHost)
	if err != nil {
		return Image{}, errs.Wrap(errs.Invalid, err, "docker engine address")
	}
	defer cli.Close()
	return NewImages(filepath.Join(dataDir, "images"), cli).Get(ctx, ref, progress)
}
