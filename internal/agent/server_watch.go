package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Watch: GET /v1/files/watch?path=P[&recursive=false] streams NDJSON
// WatchEvents for P (a file or a directory; directories are watched
// recursively unless recursive=false). The first event is "ready": from
// then on every change is reported. Inotify, through the standard library's
// syscall package, so the agent stays dependency-free; no polling.

// Watch event types.
const (
	WatchReady    = "ready"    // watching started; later changes are reported
	WatchCreate   = "create"   // a file or directory appeared (created, moved in)
	WatchModify   = "modify"   // contents or metadata (mode, times) changed
	WatchDelete   = "delete"   // removed or moved away
	WatchOverflow = "overflow" // the kernel dropped events: rescan to catch up
)

// WatchEvent is one change under a watched path.
type WatchEvent struct {
	Type  string    `json:"type"`
	Path  string    `json:"path,omitempty"` // absolute sandbox path
	IsDir bool      `json:"is_dir,omitempty"`
	Time  time.Time `json:"time"`
}

// maxWatchedDirs bounds one watch request (each directory is a kernel
// watch, counted against fs.inotify.max_user_watches).
const maxWatchedDirs = 16384

const watchMask = syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_ATTRIB |
	syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_DONT_FOLLOW | syscall.IN_EXCL_UNLINK

// watcher is one request's inotify instance.
type watcher struct {
	s         *Server
	f         *os.File
	fd        int
	root      string // the watched sandbox path
	recursive bool
	wds       map[int32]string // watch descriptor -> sandbox path
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	wt, err := s.newWatcher(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer wt.f.Close()
	stop := context.AfterFunc(r.Context(), func() { wt.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.Encode(WatchEvent{Type: WatchReady, Path: wt.root, Time: time.Now().UTC()})
	buf := make([]byte, 64<<10)
	for {
		if out.Len() > 0 {
			if _, err := w.Write(out.Bytes()); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			out.Reset()
		}
		n, err := wt.f.Read(buf)
		if err != nil {
			return // client gone (deadline set) or the instance failed
		}
		if done := wt.parse(buf[:n], enc); done {
			w.Write(out.Bytes())
			rc.Flush()
			return
		}
	}
}

func (s *Server) newWatcher(r *http.Request) (*watcher, error) {
	p, err := queryPath(r, "path")
	if err != nil {
		return nil, err
	}
	recursive := true
	if v := r.URL.Query().Get("recursive"); v != "" {
		if recursive, err = boolQuery(r, "recursive"); err != nil {
			return nil, err
		}
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		return nil, fsError(p, err)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		if errors.Is(err, syscall.ENOSYS) {
			return nil, errs.New(errs.Invalid, "file watching is not supported by this sandbox's kernel (no inotify)")
		}
		if errors.Is(err, syscall.EMFILE) {
			return nil, errs.New(errs.Limit, "too many file watches are open in this sandbox")
		}
		return nil, errs.Wrap(errs.Internal, err, "start file watch")
	}
	// A non-blocking descriptor joins the runtime poller, so Read parks the
	// goroutine and a read deadline wakes it.
	wt := &watcher{s: s, f: os.NewFile(uintptr(fd), "inotify"), fd: fd, root: p, recursive: recursive && fi.IsDir(), wds: map[int32]string{}}
	if fi.IsDir() && wt.recursive {
		err = wt.addTree(p, nil)
	} else {
		err = wt.add(p)
	}
	if err != nil {
		wt.f.Close()
		return nil, err
	}
	return wt, nil
}

// add watches one path.
func (wt *watcher) add(p string) error {
	if len(wt.wds) >= maxWatchedDirs {
		return errs.New(errs.Limit, "%s: more than %d directories to watch; watch a smaller tree", wt.root, maxWatchedDirs)
	}
	wd, err := syscall.InotifyAddWatch(wt.fd, wt.s.fs.HostPath(p), watchMask)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return errs.New(errs.Limit, "%s: the kernel's inotify watch limit is reached (fs.inotify.max_user_watches)", wt.root)
		}
		return fsError(p, err)
	}
	wt.wds[int32(wd)] = p
	return nil
}

// addTree watches directory p and every real directory below it. With
// found set, entries already present are reported as created: they appeared
// in a new directory before its watch was in place (mkdir -p a/b/c).
func (wt *watcher) addTree(p string, found func(p string, isDir bool)) error {
	if err := wt.add(p); err != nil {
		return err
	}
	names, err := wt.s.readDirNames(p)
	if err != nil {
		if errs.Is(err, errs.NotFound) && p != wt.root {
			return nil // gone again
		}
		return err
	}
	for _, n := range names {
		child := path.Join(p, n)
		fi, err := wt.s.fs.Lstat(child)
		if err != nil {
			continue
		}
		if found != nil {
			found(child, fi.IsDir())
		}
		if fi.IsDir() {
			if err := wt.addTree(child, found); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget drops the watches of directory p and everything below it. A move
// inside the watched tree re-adds them (IN_MOVED_TO follows; the kernel
// hands back the same descriptors for the same inodes).
func (wt *watcher) forget(p string) {
	for wd, q := range wt.wds {
		if q == p || strings.HasPrefix(q, p+"/") {
			syscall.InotifyRmWatch(wt.fd, uint32(wd))
			delete(wt.wds, wd)
		}
	}
}

// parse turns a read of inotify events into WatchEvents; done reports that
// the watched path itself is gone.
func (wt *watcher) parse(b []byte, enc *json.Encoder) (done bool) {
	now := time.Now().UTC()
	var last WatchEvent
	emit := func(ev WatchEvent) {
		if ev.Type == WatchModify && last.Type == WatchModify && last.Path == ev.Path {
			return // one write syscall after another: one event per read
		}
		last = ev
		enc.Encode(ev)
	}
	for len(b) >= syscall.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := syscall.SizeofInotifyEvent + nameLen
		if end > len(b) {
			break
		}
		name := string(bytes.TrimRight(b[syscall.SizeofInotifyEvent:end], "\x00"))
		b = b[end:]
		if mask&syscall.IN_Q_OVERFLOW != 0 {
			emit(WatchEvent{Type: WatchOverflow, Time: now})
			continue
		}
		dir, ok := wt.wds[wd]
		if mask&syscall.IN_IGNORED != 0 {
			delete(wt.wds, wd)
			if len(wt.wds) == 0 {
				return true
			}
			continue
		}
		if !ok {
			continue
		}
		p := dir
		if name != "" {
			p = path.Join(dir, name)
		}
		isDir := mask&syscall.IN_ISDIR != 0
		switch {
		case mask&(syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF) != 0:
			if dir == wt.root {
				emit(WatchEvent{Type: WatchDelete, Path: wt.root, IsDir: wt.recursive, Time: now})
				return true
			}
			// A subdirectory: its parent already reported the delete.
		case mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0:
			emit(WatchEvent{Type: WatchCreate, Path: p, IsDir: isDir, Time: now})
			if isDir && wt.recursive {
				err := wt.addTree(p, func(c string, d bool) {
					emit(WatchEvent{Type: WatchCreate, Path: c, IsDir: d, Time: now})
				})
				if err != nil {
					wt.s.log.Debug("watch: cannot follow a new directory", "path", p, "err", err)
					emit(WatchEvent{Type: WatchOverflow, Path: p, Time: now})
				}
			}
		case mask&(syscall.IN_DELETE|syscall.IN_MOVED_FROM) != 0:
			emit(WatchEvent{Type: WatchDelete, Path: p, IsDir: isDir, Time: now})
			if isDir && mask&syscall.IN_MOVED_FROM != 0 {
				wt.forget(p) // moved away: its watches would report stale paths
			}
		case mask&(syscall.IN_MODIFY|syscall.IN_ATTRIB) != 0:
			emit(WatchEvent{Type: WatchModify, Path: p, IsDir: isDir, Time: now})
		}
	}
	return false
}
