package agent

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// fsys is the file system as seen from inside the sandbox. Every name is a
// clean absolute sandbox path (see cleanPath). Two implementations: hostFS
// for real sandboxes where the agent's "/" is the sandbox's "/" (absolute
// symlinks in the image must keep working), and rootedFS for a host
// directory, where os.Root guarantees nothing escapes.
type fsys interface {
	Open(name string) (*os.File, error)
	OpenFile(name string, flag int, perm os.FileMode) (*os.File, error)
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	MkdirAll(name string, perm os.FileMode) error
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	Chmod(name string, mode os.FileMode) error
	// HostPath is where name lives on the agent's own file system; only
	// exec's working directory needs it.
	HostPath(name string) string
	Close() error
}

func openFS(root string) (fsys, error) {
	if root == "/" {
		return hostFS{}, nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "cannot open agent root")
	}
	return rootedFS{r: r}, nil
}

type hostFS struct{}

func (hostFS) Open(name string) (*os.File, error) { return os.Open(name) }
func (hostFS) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
func (hostFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }
func (hostFS) Lstat(name string) (fs.FileInfo, error)       { return os.Lstat(name) }
func (hostFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (hostFS) Remove(name string) error                     { return os.Remove(name) }
func (hostFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (hostFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (hostFS) Chmod(name string, mode os.FileMode) error    { return os.Chmod(name, mode) }
func (hostFS) HostPath(name string) string                  { return name }
func (hostFS) Close() error                                 { return nil }

type rootedFS struct{ r *os.Root }

// rel turns a sandbox path into a name relative to the root.
func (rootedFS) rel(name string) string {
	if name == "/" {
		return "."
	}
	return strings.TrimPrefix(name, "/")
}

func (f rootedFS) Open(name string) (*os.File, error) { return f.r.Open(f.rel(name)) }
func (f rootedFS) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return f.r.OpenFile(f.rel(name), flag, perm)
}
func (f rootedFS) Stat(name string) (fs.FileInfo, error)  { return f.r.Stat(f.rel(name)) }
func (f rootedFS) Lstat(name string) (fs.FileInfo, error) { return f.r.Lstat(f.rel(name)) }
func (f rootedFS) MkdirAll(name string, perm os.FileMode) error {
	return f.r.MkdirAll(f.rel(name), perm)
}
func (f rootedFS) Remove(name string) error    { return f.r.Remove(f.rel(name)) }
func (f rootedFS) RemoveAll(name string) error { return f.r.RemoveAll(f.rel(name)) }
func (f rootedFS) Rename(oldname, newname string) error {
	return f.r.Rename(f.rel(oldname), f.rel(newname))
}
func (f rootedFS) Chmod(name string, mode os.FileMode) error { return f.r.Chmod(f.rel(name), mode) }
func (f rootedFS) HostPath(name string) string {
	return path.Join(f.r.Name(), name)
}
func (f rootedFS) Close() error { return f.r.Close() }

// cleanPath validates a sandbox path: absolute, no NUL, cleaned. Cleaning an
// absolute path cannot climb above "/", so "/../../x" is "/x".
func cleanPath(p string) (string, error) {
	switch {
	case p == "":
		return "", errs.New(errs.Invalid, "path is required")
	case strings.IndexByte(p, 0) >= 0:
		return "", errs.New(errs.Invalid, "path contains a NUL byte")
	case !strings.HasPrefix(p, "/"):
		return "", errs.New(errs.Invalid, "path %q must be absolute", p)
	}
	return path.Clean(p), nil
}

// fsError classifies a file-system failure on sandbox path p. The message is
// built from p and the errno text only, never from err.Error(), which may
// carry the host path of the root.
// FSError classifies a file-system error for sandbox path p the way the
// agent does, for callers that touch a sandbox's files another way (the
// server's host upload path).
func FSError(p string, err error) error { return fsError(p, err) }

func fsError(p string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errs.Wrap(errs.NotFound, err, "%s: no such file or directory", p)
	case errors.As(err, &errno):
		return errnoError(p, errno, err)
	case errors.Is(err, fs.ErrExist):
		return errs.Wrap(errs.Conflict, err, "%s: already exists", p)
	case errors.Is(err, fs.ErrPermission):
		return errs.Wrap(errs.Forbidden, err, "%s: permission denied", p)
	}
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		// os.Root reports escapes with an unexported, errno-less error.
		return errs.Wrap(errs.Forbidden, err, "%s: path escapes the sandbox root", p)
	}
	return errs.Wrap(errs.Internal, err, "%s: file operation failed", p)
}

func errnoError(p string, errno syscall.Errno, err error) error {
	switch errno {
	case syscall.EEXIST:
		return errs.Wrap(errs.Conflict, err, "%s: already exists", p)
	case syscall.ENOTEMPTY:
		return errs.Wrap(errs.Conflict, err, "%s: directory not empty (use recursive)", p)
	case syscall.EACCES, syscall.EPERM:
		return errs.Wrap(errs.Forbidden, err, "%s: permission denied", p)
	case syscall.EROFS:
		return errs.Wrap(errs.Forbidden, err, "%s: read-only file system", p)
	case syscall.ENOSPC, syscall.EDQUOT:
		return errs.Wrap(errs.Limit, err, "%s: no space left on device", p)
	case syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP, syscall.EINVAL,
		syscall.ENAMETOOLONG, syscall.EXDEV, syscall.EBUSY, syscall.ETXTBSY:
		return errs.Wrap(errs.Invalid, err, "%s: %s", p, errno.Error())
	}
	return errs.Wrap(errs.Internal, err, "%s: %s", p, errno.Error())
}

// permString renders the permission bits, including setuid/setgid/sticky,
// as octal digits without a leading zero ("644", "1777").
func permString(m fs.FileMode) string {
	return strconv.FormatUint(uint64(unixMode(m)), 8)
}

// unixMode converts Go's FileMode bits to the Unix permission word.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode converts a Unix permission word (<= 07777) to Go's FileMode.
func fileMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func fileInfo(p string, fi fs.FileInfo) FileInfo {
	return FileInfo{
		Path:    p,
		Size:    fi.Size(),
		Mode:    permString(fi.Mode()),
		IsDir:   fi.IsDir(),
		ModTime: fi.ModTime().UTC(),
	}
}
