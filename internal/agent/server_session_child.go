package agent

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/creack/pty"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// child is one started process of a session or of the background process
// table, with its I/O. Every child leads its own session (setsid), so the
// whole tree it starts, including jobs a shell moves to other process
// groups, can be found and killed by session id.
type child struct {
	pid   int
	argv0 string
	tty   *os.File // pty master (non-blocking, pollable); nil without a terminal
	stdin *os.File // where stdin bytes go: the master, a pipe, or nil (/dev/null)
	outs  []output // what the process writes
	wait  func() (*os.ProcessState, error)
	start time.Time

	stdinMu  sync.Mutex // serialises writes and the close of stdin
	stdinEOF bool
}

// output is one read end with the frame type its bytes travel as.
type output struct {
	f   *os.File
	typ byte
}

// defaultCols and defaultRows size a terminal whose size was not given.
const (
	defaultCols = 80
	defaultRows = 24
)

// startChild validates spec and starts its process. With TTY the process
// gets a pseudo-terminal as stdin, stdout and stderr and as its controlling
// terminal; without, pipes (stdin only when wantStdin).
func (s *Server) startChild(spec ProcessSpec, wantStdin bool) (*child, error) {
	if spec.TTY {
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		if _, ok := spec.Env["TERM"]; !ok {
			spec.Env["TERM"] = "xterm-256color"
		}
	}
	cmd, err := s.prepare(spec.ExecRequest)
	if err != nil {
		return nil, err
	}
	prog, err := lookPath(cmd.Args[0], envValue(cmd.Env, "PATH"))
	if err != nil {
		return nil, err
	}
	cmd.Path = prog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}

	var closeAfterStart, closeOnFail []*os.File
	fail := func(err error) (*child, error) {
		for _, f := range append(closeAfterStart, closeOnFail...) {
			f.Close()
		}
		return nil, err
	}
	c := &child{argv0: cmd.Args[0]}
	if spec.TTY {
		master, slave, err := openPTY(spec.Cols, spec.Rows)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "cannot allocate a pseudo-terminal in the sandbox")
		}
		closeAfterStart = append(closeAfterStart, slave)
		closeOnFail = append(closeOnFail, master)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0 // the child's fd 0 (the slave)
		c.tty, c.stdin = master, master
		c.outs = []output{{master, FrameStdout}}
	} else {
		for _, typ := range []byte{FrameStdout, FrameStderr} {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(errs.Wrap(errs.Internal, err, "create output pipe"))
			}
			closeAfterStart = append(closeAfterStart, w)
			closeOnFail = append(closeOnFail, r)
			if typ == FrameStdout {
				cmd.Stdout = w
			} else {
				cmd.Stderr = w
			}
			c.outs = append(c.outs, output{r, typ})
		}
		if wantStdin {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(errs.Wrap(errs.Internal, err, "create stdin pipe"))
			}
			closeAfterStart = append(closeAfterStart, r)
			closeOnFail = append(closeOnFail, w)
			cmd.Stdin = r
			c.stdin = w
		}
	}
	s.spawnMu.Lock()
	err = cmd.Start()
	s.spawnMu.Unlock()
	if err != nil {
		s.log.Info("process", "argv0", cmd.Args[0], "err", startErrno(err))
		return fail(startError(cmd.Args[0], err))
	}
	for _, f := range closeAfterStart {
		f.Close()
	}
	c.pid = cmd.Process.Pid
	c.start = time.Now()
	c.wait = func() (*os.ProcessState, error) { err := cmd.Wait(); return cmd.ProcessState, err }
	return c, nil
}

// openPTY opens a terminal pair sized cols x rows. The master is switched
// to non-blocking mode and registered with the runtime poller, so a read
// blocked on it ends when it is closed (a blocking fd would pin a thread
// until the last holder of the slave goes away).
func openPTY(cols, rows uint16) (master, slave *os.File, err error) {
	m, sl, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	// pty.Open made m blocking (it called Fd); a duplicate set non-blocking
	// before os.NewFile is pollable.
	fd, err := syscall.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		sl.Close()
		return nil, nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		sl.Close()
		return nil, nil, err
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if cols == 0 {
		cols = defaultCols
	}
	if rows == 0 {
		rows = defaultRows
	}
	if err := setWinsize(master, cols, rows); err != nil {
		master.Close()
		sl.Close()
		return nil, nil, err
	}
	return master, sl, nil
}

// ioctlFile runs one ioctl on f without making it blocking (f.Fd would).
func ioctlFile(f *os.File, req uintptr, arg unsafe.Pointer) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if cerr := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

func setWinsize(f *os.File, cols, rows uint16) error {
	ws := pty.Winsize{Cols: cols, Rows: rows}
	return ioctlFile(f, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
}

// resize sets the terminal size; the kernel sends SIGWINCH to the
// terminal's foreground process group.
func (c *child) resize(cols, rows uint16) error {
	if c.tty == nil {
		return errs.New(errs.Conflict, "the process has no terminal to resize (start it with tty)")
	}
	if cols == 0 || rows == 0 {
		return errs.New(errs.Invalid, "terminal size %dx%d: cols and rows must be at least 1", cols, rows)
	}
	if err := setWinsize(c.tty, cols, rows); err != nil {
		return errs.Wrap(errs.Conflict, err, "the terminal is closed")
	}
	return nil
}

// signal delivers sig the way a terminal would: on a TTY to the terminal's
// foreground process group (what Ctrl-C reaches: the command a shell runs,
// not the shell), otherwise to the process's group.
func (c *child) signal(sig syscall.Signal) error {
	target := c.pid
	if c.tty != nil {
		var pgrp int32
		if err := ioctlFile(c.tty, syscall.TIOCGPGRP, unsafe.Pointer(&pgrp)); err == nil && pgrp > 0 {
			target = int(pgrp)
		} else if err != nil {
			// gVisor answers TIOCGPGRP only to processes whose controlling
			// terminal it is, reports no tpgid in /proc and turns no keys
			// into signals: guess the foreground job instead.
			target = newestJobGroup(c.pid)
		}
	}
	if err := syscall.Kill(-target, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return errs.New(errs.Conflict, "the process has already exited")
		}
		return errs.Wrap(errs.Internal, err, "signal process group %d", target)
	}
	return nil
}

// newestJobGroup returns the process group of the most recently started
// process of session sid outside the leader's own group (the job a shell
// started last, normally the foreground one), or sid when there is none.
func newestJobGroup(sid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return sid
	}
	best, bestStart := sid, int64(-1)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(pid)
		if !ok || st.session != sid || st.pgrp == sid || st.state == "Z" {
			continue
		}
		if st.start > bestStart {
			best, bestStart = st.pgrp, st.start
		}
	}
	return best
}

// kill sends SIGKILL to every process of the child's session: its own
// group, the terminal's job groups, and descendants that moved elsewhere
// but kept the session.
func (c *child) kill() { killSession(c.pid) }

// killSession kills process group sid and every process whose session id
// is sid (found in /proc).
func killSession(sid int) {
	syscall.Kill(-sid, syscall.SIGKILL)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sid {
			continue
		}
		if st, ok := procStat(pid); ok && st.session == sid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// statFields are the parts of /proc/PID/stat the agent uses.
type statFields struct {
	state   string
	pgrp    int
	session int
	start   int64 // clock ticks after boot
}

// procStat reads /proc/PID/stat (the command name in field 2 may hold
// spaces and parentheses, so fields are counted after its last ')').
func procStat(pid int) (statFields, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return statFields{}, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return statFields{}, false
	}
	f := strings.Fields(string(b[i+1:])) // field 3 (state) onwards
	if len(f) < 20 {
		return statFields{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	sid, err2 := strconv.Atoi(f[3])
	start, err3 := strconv.ParseInt(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return statFields{}, false
	}
	return statFields{state: f[0], pgrp: pgrp, session: sid, start: start}, true
}

// writeStdin writes p to the process's stdin. ctx bounds a write blocked
// on a process that does not read.
func (c *child) writeStdin(ctx context.Context, p []byte) error {
	c.stdinMu.Lock()
	defer c.stdinMu.Unlock()
	if c.stdin == nil {
		return errs.New(errs.Conflict, "the process was started without stdin (start it with stdin or tty)")
	}
	if c.stdinEOF {
		return errs.New(errs.Conflict, "stdin of the process is closed")
	}
	stop := context.AfterFunc(ctx, func() { c.stdin.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := c.stdin.Write(p)
	if !stop() {
		c.stdin.SetWriteDeadline(time.Time{})
		if err != nil {
			return errs.Wrap(errs.Timeout, ctx.Err(), "the process did not read its stdin")
		}
	}
	if err != nil {
		return errs.Wrap(errs.Conflict, err, "stdin of the process is closed")
	}
	return nil
}

// closeStdin ends stdin: a closed pipe, or on a terminal the EOF character
// (Ctrl-D) at the start of a line, which is how a terminal user ends input.
func (c *child) closeStdin() error {
	c.stdinMu.Lock()
	defer c.stdinMu.Unlock()
	if c.stdin == nil || c.stdinEOF {
		return nil
	}
	if c.tty != nil {
		_, err := c.tty.Write([]byte{0x04})
		return err
	}
	c.stdinEOF = true
	return c.stdin.Close()
}

// pump copies every output of c to sink (from one goroutine per output)
// and returns a function that waits for them all to end.
func (c *child) pump(sink func(typ byte, p []byte) error) (wait func()) {
	var wg sync.WaitGroup
	for _, o := range c.outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := o.f.Read(buf)
				if n > 0 {
					if sink(o.typ, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					// EOF on a pipe; EIO on a master whose slave closed;
					// ErrClosed once finish gave up on a lingering holder.
					return
				}
			}
		}()
	}
	return wg.Wait
}

// errRunTimeout is the cancellation cause of a run whose TimeoutMS expired.
var errRunTimeout = errors.New("process timeout")

// finish waits for the process to exit (killing its session when ctx ends
// or timeoutMS expires), then waits up to waitDelay for the outputs to
// drain (descendants may hold them open) and releases every file.
func (c *child) finish(ctx context.Context, timeoutMS int64, pumped func()) ExecResult {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if timeoutMS > 0 && timeoutMS < math.MaxInt64/int64(time.Millisecond) {
		tctx, tcancel := context.WithTimeoutCause(ctx, time.Duration(timeoutMS)*time.Millisecond, errRunTimeout)
		defer tcancel()
		ctx = tctx
	}
	stop := context.AfterFunc(ctx, c.kill)
	ps, _ := c.wait()
	stop()
	res := ExecResult{DurationNS: int64(time.Since(c.start)), ExitCode: exitCode(ps)}
	if context.Cause(ctx) == errRunTimeout && res.ExitCode == 128+int(syscall.SIGKILL) {
		res.ExitCode, res.TimedOut = -1, true
	}
	drained := make(chan struct{})
	go func() { pumped(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(waitDelay):
	}
	for _, o := range c.outs {
		o.f.Close()
	}
	<-drained
	c.stdinMu.Lock()
	if c.stdin != nil && c.stdin != c.tty && !c.stdinEOF {
		c.stdin.Close()
	}
	c.stdinEOF = true
	c.stdinMu.Unlock()
	return res
}

// copyStdin streams r into the process's stdin.
func (c *child) copyStdin(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := c.writeStdin(ctx, buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "read stdin body")
		}
	}
}
