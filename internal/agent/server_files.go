package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// queryPath returns the validated sandbox path in query parameter key.
func queryPath(r *http.Request, key string) (string, error) {
	return cleanPath(r.URL.Query().Get(key))
}

// parseMode parses an octal permission string ("0600", "755", "1777").
func parseMode(s string) (fs.FileMode, error) {
	u, err := strconv.ParseUint(s, 8, 32)
	if err != nil || s == "" || u > 0o7777 {
		return 0, errs.New(errs.Invalid, "mode %q is not an octal permission between 0 and 7777", s)
	}
	return fileMode(uint32(u)), nil
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) {
	p, err := queryPath(r, "path")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Stat before opening: opening a FIFO for reading would block.
	fi, err := s.fs.Stat(p)
	if err == nil && fi.IsDir() {
		err = errs.New(errs.Invalid, "%s: is a directory", p)
	} else if err == nil && !fi.Mode().IsRegular() {
		err = errs.New(errs.Invalid, "%s: not a regular file", p)
	} else if err != nil {
		err = fsError(p, err)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := s.fs.Open(p)
	if err != nil {
		s.writeError(w, r, fsError(p, err))
		return
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		s.writeError(w, r, errs.New(errs.Invalid, "%s: not a regular file", p))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	size := fi.Size()
	if size == 0 {
		// Files in /proc and /sys report 0 yet have content: stream them
		// chunked instead of promising an empty body.
		io.Copy(w, f)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	// CopyN: a file growing while we read must not overrun Content-Length.
	if _, err := io.CopyN(w, f, size); err != nil {
		s.log.Debug("file read aborted", "err", err)
	}
}

func (s *Server) handleWrite(w http.ResponseWriter, r *http.Request) {
	if err := s.writeFile(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeFile streams the body into a temporary file next to the target and
// renames it over the target, so readers never see a partial file. A symlink
// at the target is replaced, not written through.
func (s *Server) writeFile(r *http.Request) error {
	p, err := queryPath(r, "path")
	if err != nil {
		return err
	}
	if p == "/" {
		return errs.New(errs.Invalid, "/: is a directory")
	}
	mode := fs.FileMode(0o644)
	if m := r.URL.Query().Get("mode"); m != "" {
		if mode, err = parseMode(m); err != nil {
			return err
		}
	}
	if fi, err := s.fs.Stat(p); err == nil && fi.IsDir() {
		return errs.New(errs.Invalid, "%s: is a directory", p)
	} else if err != nil && !errs.Is(fsError(p, err), errs.NotFound) {
		return fsError(p, err)
	}
	dir := path.Dir(p)
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return fsError(dir, err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".stacyvm-tmp-"+hex.EncodeToString(rnd[:]))
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fsError(p, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			s.fs.Remove(tmp)
		}
	}()
	// 1 MiB at a time, and past os.File's ReadFrom (which would copy in
	// 32 KiB steps): fewer syscalls and context switches per megabyte.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r.Body, make([]byte, bulkBuffer)); err != nil {
		if isWriteErr(err) {
			return fsError(p, err)
		}
		return errs.Wrap(errs.Invalid, err, "%s: upload interrupted", p)
	}
	// fchmod on the descriptor: exact bits whatever the umask.
	if err := f.Chmod(mode); err != nil {
		return fsError(p, err)
	}
	if err := f.Close(); err != nil {
		return fsError(p, err)
	}
	// Replacing a large file frees its pages when its last link goes, which
	// a rename would do on this request's time (23 ms for 100 MB, measured).
	// Holding the old file open moves that work to the background close.
	// Only large regular files: opening a FIFO or a device has effects.
	var old *os.File
	if fi, err := s.fs.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() >= bulkBuffer {
		old, _ = s.fs.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	}
	if err := s.fs.Rename(tmp, p); err != nil {
		if old != nil {
			old.Close()
		}
		s.fs.Remove(tmp)
		ok = true
		return fsError(p, err)
	}
	if old != nil {
		go old.Close()
	}
	ok = true
	return nil
}

// bulkBuffer is the copy buffer for file bodies.
const bulkBuffer = 1 << 20

// isWriteErr reports whether an io.Copy failure came from the file side
// (disk full, quota) rather than the request body.
func isWriteErr(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "write"
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	p, err := queryPath(r, "path")
	if err == nil && p == "/" {
		err = errs.New(errs.Invalid, "refusing to delete /")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fi, err := s.fs.Lstat(p)
	if err != nil {
		s.writeError(w, r, fsError(p, err))
		return
	}
	if fi.IsDir() && r.URL.Query().Get("recursive") == "true" {
		err = s.fs.RemoveAll(p)
	} else {
		err = s.fs.Remove(p)
	}
	if err != nil {
		s.writeError(w, r, fsError(p, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	p, err := queryPath(r, "path")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.list(p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, out)
}

func (s *Server) list(p string) ([]FileInfo, error) {
	fi, err := s.fs.Stat(p)
	if err != nil {
		return nil, fsError(p, err)
	}
	if !fi.IsDir() {
		return nil, errs.New(errs.Invalid, "%s: not a directory", p)
	}
	names, err := s.readDirNames(p)
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(names))
	for _, name := range names {
		child := path.Join(p, name)
		fi, err := s.fs.Stat(child)
		if err != nil {
			// A broken (or, under a rooted FS, escaping) symlink is still
			// an entry: describe the link itself.
			if fi, err = s.fs.Lstat(child); err != nil {
				continue // removed since ReadDir
			}
		}
		out = append(out, fileInfo(child, fi))
	}
	return out, nil
}

// readDirNames returns the sorted entry names of directory p.
func (s *Server) readDirNames(p string) ([]string, error) {
	d, err := s.fs.Open(p)
	if err != nil {
		return nil, fsError(p, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fsError(p, err)
	}
	slices.Sort(names)
	return names, nil
}

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) {
	p, err := queryPath(r, "path")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil && errs.Is(fsError(p, err), errs.NotFound) {
		// A dangling symlink exists; describe the link.
		fi, err = s.fs.Lstat(p)
	}
	if err != nil {
		s.writeError(w, r, fsError(p, err))
		return
	}
	s.writeJSON(w, fileInfo(p, fi))
}

func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	var req MoveRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.move(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) move(req MoveRequest) error {
	oldp, err := cleanPath(req.OldPath)
	if err != nil {
		return err
	}
	newp, err := cleanPath(req.NewPath)
	if err != nil {
		return err
	}
	if oldp == "/" || newp == "/" {
		return errs.New(errs.Invalid, "cannot move / or onto /")
	}
	if strings.HasPrefix(newp, oldp+"/") {
		return errs.New(errs.Invalid, "cannot move %s into itself", oldp)
	}
	if _, err := s.fs.Lstat(oldp); err != nil {
		return fsError(oldp, err)
	}
	if err := s.fs.MkdirAll(path.Dir(newp), 0o755); err != nil {
		return fsError(path.Dir(newp), err)
	}
	if err := s.fs.Rename(oldp, newp); err != nil {
		return fsError(newp, err)
	}
	return nil
}

func (s *Server) handleChmod(w http.ResponseWriter, r *http.Request) {
	var req ChmodRequest
	err := decodeJSON(w, r, &req)
	var p string
	var mode fs.FileMode
	if err == nil {
		p, err = cleanPath(req.Path)
	}
	if err == nil {
		mode, err = parseMode(req.Mode)
	}
	if err == nil {
		if cerr := s.fs.Chmod(p, mode); cerr != nil {
			err = fsError(p, cerr)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
