package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Archives: GET /v1/files/archive?path=DIR[&gzip=true] streams DIR's tree as
// a tar (names relative to DIR, symlinks stored as links, never followed);
// PUT /v1/files/archive?path=DIR[&gzip=true] extracts a tar body under DIR
// and answers ArchiveResult. Both stream: memory use does not grow with the
// archive.

// ArchiveResult summarises one extraction.
type ArchiveResult struct {
	Files    int   `json:"files"`
	Dirs     int   `json:"dirs"`
	Symlinks int   `json:"symlinks"`
	Links    int   `json:"hard_links"`
	Bytes    int64 `json:"bytes"`
	// Skipped counts entries of kinds that are not extracted (devices,
	// FIFOs): a sandbox has no business creating device nodes.
	Skipped int `json:"skipped"`
}

// openSubRoot opens sandbox directory p as an os.Root, so every name below
// it is confined to it whatever symlinks the tree holds.
func (s *Server) openSubRoot(p string) (*os.Root, error) {
	var r *os.Root
	var err error
	switch f := s.fs.(type) {
	case rootedFS:
		r, err = f.r.OpenRoot(f.rel(p))
	default:
		r, err = os.OpenRoot(s.fs.HostPath(p))
	}
	if err != nil {
		return nil, fsError(p, err)
	}
	return r, nil
}

func boolQuery(r *http.Request, key string) (bool, error) {
	switch v := r.URL.Query().Get(key); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, errs.New(errs.Invalid, "query parameter %q must be true or false, got %q", key, printableArg(v))
	}
}

func (s *Server) handleArchiveRead(w http.ResponseWriter, r *http.Request) {
	p, err := queryPath(r, "path")
	var gz bool
	if err == nil {
		gz, err = boolQuery(r, "gzip")
	}
	var root *os.Root
	if err == nil {
		var fi fs.FileInfo
		if fi, err = s.fs.Stat(p); err != nil {
			err = fsError(p, err)
		} else if !fi.IsDir() {
			err = errs.New(errs.Invalid, "%s: not a directory", p)
		} else {
			root, err = s.openSubRoot(p)
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer root.Close()
	if gz {
		w.Header().Set("Content-Type", "application/gzip")
	} else {
		w.Header().Set("Content-Type", "application/x-tar")
	}
	w.WriteHeader(http.StatusOK)
	out := io.Writer(w)
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	tw := tar.NewWriter(out)
	err = writeTree(tw, root, make([]byte, bulkBuffer))
	if err == nil {
		err = tw.Close()
	}
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err != nil {
		// The status is sent: abort the chunked body so the client sees a
		// broken stream, never a clean but incomplete archive.
		s.log.Warn("archive stream aborted", "path", p, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// writeTree writes every entry under root, depth first, sorted by name.
func writeTree(tw *tar.Writer, root *os.Root, buf []byte) error {
	return fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name != "." && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if name == "." {
			return nil
		}
		fi, err := root.Lstat(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(unixMode(fi.Mode())),
			ModTime: fi.ModTime(),
			Format:  tar.FormatPAX,
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		}
		switch {
		case fi.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			return tw.WriteHeader(hdr)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return tw.WriteHeader(hdr)
		case fi.Mode().IsRegular():
			return writeFileEntry(tw, root, hdr, fi.Size(), buf)
		}
		return nil // sockets, FIFOs, devices are not archived
	})
}

func writeFileEntry(tw *tar.Writer, root *os.Root, hdr *tar.Header, size int64, buf []byte) error {
	f, err := root.OpenFile(hdr.Name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	hdr.Typeflag, hdr.Size = tar.TypeReg, size
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{tw}, io.LimitReader(f, size), buf)
	if err != nil {
		return err
	}
	// A file that shrank while we read it is padded with zeros: the header
	// already promised size bytes.
	for n < size {
		k := min(int64(len(buf)), size-n)
		clear(buf[:k])
		if _, err := tw.Write(buf[:k]); err != nil {
			return err
		}
		n += k
	}
	return nil
}

func (s *Server) handleArchiveWrite(w http.ResponseWriter, r *http.Request) {
	res, err := s.extract(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, res)
}

func (s *Server) extract(r *http.Request) (ArchiveResult, error) {
	var res ArchiveResult
	p, err := queryPath(r, "path")
	if err != nil {
		return res, err
	}
	gz, err := boolQuery(r, "gzip")
	if err != nil {
		return res, err
	}
	if err := s.fs.MkdirAll(p, 0o755); err != nil {
		return res, fsError(p, err)
	}
	root, err := s.openSubRoot(p)
	if err != nil {
		return res, err
	}
	defer root.Close()
	body := io.Reader(r.Body)
	if gz {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return res, errs.Wrap(errs.Invalid, err, "archive body is not gzip data")
		}
		defer zr.Close()
		body = zr
	}
	x := &extractor{root: root, dir: p, dirs: map[string]bool{}, buf: make([]byte, bulkBuffer), res: &res}
	if err := x.run(tar.NewReader(body)); err != nil {
		return res, err
	}
	return res, nil
}

// extractor writes tar entries below root. Names are validated (relative,
// no "..", no NUL), parents are created as real directories, and an entry
// whose parent is a symlink is refused, so a link planted by the archive
// (or already in the tree) is never written through. os.Root confines
// everything else.
type extractor struct {
	root *os.Root
	dir  string          // sandbox path of root, for messages
	dirs map[string]bool // parents known to be real directories
	buf  []byte
	res  *ArchiveResult
	// dirTimes are applied last: creating children changes a directory's mtime.
	dirTimes []dirTime
}

type dirTime struct {
	name string
	t    time.Time
}

func (x *extractor) run(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "archive is not a valid tar stream (or the upload was interrupted)")
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		_ = x.root.Chtimes(d.name, d.t, d.t)
	}
	return nil
}

// ArchiveName validates a tar entry name and returns it cleaned and
// relative ("" for the archive's own root entry).
func ArchiveName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errs.New(errs.Invalid, "archive entry %q: name contains a NUL byte", printableArg(name))
	}
	if strings.HasPrefix(name, "/") {
		return "", errs.New(errs.Invalid, "archive entry %q: absolute names are refused", printableArg(name))
	}
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", errs.New(errs.Invalid, "archive entry %q: \"..\" is refused (it would escape the target directory)", printableArg(name))
		default:
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := ArchiveName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // "./": the target directory itself
	}
	if err := x.parents(name); err != nil {
		return err
	}
	full := path.Join(x.dir, name)
	mode := fileMode(uint32(hdr.Mode) & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := x.root.Lstat(name)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			if err := x.root.Remove(name); err != nil {
				return fsError(full, err)
			}
			fallthrough
		default:
			if err := x.root.Mkdir(name, 0o700); err != nil {
				return fsError(full, err)
			}
		}
		if err := x.root.Chmod(name, mode); err != nil {
			return fsError(full, err)
		}
		x.dirs[name] = true
		x.dirTimes = append(x.dirTimes, dirTime{name, hdr.ModTime})
		x.res.Dirs++
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := x.replace(name, full); err != nil {
			return err
		}
		n, err := x.writeFile(name, full, mode, tr)
		x.res.Bytes += n
		if err != nil {
			return err
		}
		_ = x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
		x.res.Files++
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return errs.New(errs.Invalid, "archive entry %q: invalid symlink target", printableArg(hdr.Name))
		}
		if err := x.replace(name, full); err != nil {
			return err
		}
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return fsError(full, err)
		}
		x.res.Symlinks++
	case tar.TypeLink:
		target, err := ArchiveName(hdr.Linkname)
		if err != nil || target == "" {
			return errs.New(errs.Invalid, "archive entry %q: hard link target %q is not inside the archive", printableArg(hdr.Name), printableArg(hdr.Linkname))
		}
		if err := x.parents(target); err != nil {
			return err
		}
		if err := x.replace(name, full); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return fsError(full, err)
		}
		x.res.Links++
	default:
		x.res.Skipped++
	}
	return nil
}

// parents makes every parent of name a real directory, refusing symlinks.
func (x *extractor) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		if cur == "" {
			cur = c
		} else {
			cur += "/" + c
		}
		if x.dirs[cur] {
			continue
		}
		fi, err := x.root.Lstat(cur)
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return errs.New(errs.Invalid, "archive entry %q: its parent %s is a symlink, which extraction never writes through", printableArg(name), cur)
		case err == nil && !fi.IsDir():
			return errs.New(errs.Invalid, "archive entry %q: its parent %s is not a directory", printableArg(name), cur)
		case err != nil && errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fsError(path.Join(x.dir, cur), err)
			}
		case err != nil:
			return fsError(path.Join(x.dir, cur), err)
		}
		x.dirs[cur] = true
	}
	return nil
}

// replace removes whatever non-directory sits at name, so the new entry
// never writes through an existing symlink.
func (x *extractor) replace(name, full string) error {
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fsError(full, err)
	}
	if fi.IsDir() {
		return errs.New(errs.Invalid, "%s: is a directory in the target and a file in the archive", full)
	}
	if err := x.root.Remove(name); err != nil {
		return fsError(full, err)
	}
	return nil
}

// writeFile copies an entry's body into a new file. Runs of zeros a
// megabyte long become holes, so sparse data stays sparse.
func (x *extractor) writeFile(name, full string, mode fs.FileMode, r io.Reader) (int64, error) {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fsError(full, err)
	}
	defer f.Close()
	var n int64
	hole := false
	for {
		k, rerr := io.ReadFull(r, x.buf)
		if k > 0 {
			if allZero(x.buf[:k]) {
				if _, err := f.Seek(int64(k), io.SeekCurrent); err != nil {
					return n, fsError(full, err)
				}
				hole = true
			} else {
				if _, err := f.Write(x.buf[:k]); err != nil {
					return n, fsError(full, err)
				}
				hole = false
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return n, errs.Wrap(errs.Invalid, rerr, "%s: archive body interrupted", full)
		}
	}
	if hole {
		if err := f.Truncate(n); err != nil {
			return n, fsError(full, err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return n, fsError(full, err)
	}
	if err := f.Close(); err != nil {
		return n, fsError(full, err)
	}
	return n, nil
}

// allZero reports whether b holds only zero bytes: b[0] is zero and every
// byte equals its neighbour (one memequal over the buffer, no zero page).
func allZero(b []byte) bool {
	return len(b) == 0 || b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}
