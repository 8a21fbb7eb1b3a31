package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// hostWriteMin is the upload size from which WriteFile tries the host path:
// below it the agent round trip is cheaper than inspecting the container.
const hostWriteMin = 1 << 20

// hostCopyBuffer is the copy buffer of the host path (as the agent's).
const hostCopyBuffer = 1 << 20

// errHostDeclined means the host path could not be prepared before any of
// the body was read: the caller falls back to the agent.
var errHostDeclined = errors.New("host write path declined")

// writeViaHost writes a large upload straight into the sandbox's file system
// through the provider's HostFS (one copy on the host instead of a second
// HTTP hop through the agent), with the agent's semantics: parents created,
// a temporary file in the same directory renamed over the target, exact
// mode bits. It returns errHostDeclined, having read nothing of body, when
// the provider or this path does not allow it (e.g. an absolute symlink on
// the way, which os.Root refuses to follow): the agent then does the write.
func writeViaHost(ctx context.Context, t *target, p string, mode uint32, body io.Reader) error {
	hfs, ok := t.prov.(provider.HostFS)
	if !ok {
		return errHostDeclined
	}
	root, ok := hfs.HostRoot(ctx, t.handle)
	if !ok {
		return errHostDeclined
	}
	defer root.Close()
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		return errs.New(errs.Invalid, "%s: is a directory", p)
	}
	if fi, err := root.Stat(rel); err == nil && fi.IsDir() {
		return errs.New(errs.Invalid, "%s: is a directory", p)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errHostDeclined
	}
	dir := path.Dir(rel)
	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return errHostDeclined
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".stacyvm-tmp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errHostDeclined
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			root.Remove(tmp)
		}
	}()
	// Past os.File's ReadFrom, which would copy in 32 KiB steps.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, body, make([]byte, hostCopyBuffer)); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return hostFSError(p, err)
		}
		return errs.Wrap(errs.Invalid, err, "%s: upload interrupted", p)
	}
	if err := f.Chmod(os.FileMode(mode)); err != nil {
		return hostFSError(p, err)
	}
	if err := f.Close(); err != nil {
		return hostFSError(p, err)
	}
	// As the agent does: hold a large file being replaced open so the pages
	// it frees on its last link go away in a background close, not on this
	// request's time. Regular files only (opening a FIFO has effects).
	var old *os.File
	if fi, err := root.Lstat(rel); err == nil && fi.Mode().IsRegular() && fi.Size() >= hostWriteMin {
		old, _ = root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	}
	if err := root.Rename(tmp, rel); err != nil {
		if old != nil {
			old.Close()
		}
		return hostFSError(p, err)
	}
	if old != nil {
		go old.Close()
	}
	done = true
	return nil
}

// hostFSError classifies a failure after the body was consumed, as the agent
// does for the same errno.
func hostFSError(p string, err error) error { return agent.FSError(p, err) }
