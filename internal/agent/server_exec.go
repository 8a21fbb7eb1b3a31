package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// waitDelay bounds how long an exec waits, after its process exited or was
// killed, for output pipes still held open by background descendants.
const waitDelay = 200 * time.Millisecond

// defaultPath is used to find executables when neither the request nor the
// agent's environment sets PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// errExecTimeout is the cancellation cause of an exec whose TimeoutMS expired.
var errExecTimeout = errors.New("exec timeout")

// frameStream serializes frames from the stdout and stderr copiers onto the
// response and flushes each one, so output reaches the host as it is made.
type frameStream struct {
	mu      sync.Mutex
	w       io.Writer
	rc      *http.ResponseController
	err     error
	onFail  func() // kills the process when the host stops listening
	flushed bool   // the response head has gone out
	done    bool   // the final frame is written: later output is dropped
}

// headerDelay is how long a silent command's response head is held back. A
// short command's head, exit frame and end then leave in one write, which
// saves a wakeup on both sides of every quick exec; a long silent command
// still has its head sent promptly, so the host sees the stream started.
const headerDelay = 5 * time.Millisecond

// flushHead sends the response head if nothing has been sent yet.
func (f *frameStream) flushHead() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil && !f.flushed {
		if err := f.rc.Flush(); err != nil {
			f.fail(err)
			return
		}
		f.flushed = true
	}
}

// finish writes the final frame. It is not flushed: returning from the
// handler completes the response, in one write when nothing went out yet.
func (f *frameStream) finish(typ byte, payload []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		_ = WriteFrame(f.w, typ, payload)
	}
	f.done = true
}

func (f *frameStream) write(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		// Output of background processes the exec left behind (the
		// wrapper's late stdout) after the result went out: dropped, so
		// they never block on a full pipe.
		return nil
	}
	if f.err != nil {
		return f.err
	}
	for {
		n := min(len(p), MaxFrame)
		if err := WriteFrame(f.w, typ, p[:n]); err != nil {
			f.fail(err)
			return err
		}
		if p = p[n:]; len(p) == 0 {
			break
		}
	}
	if err := f.rc.Flush(); err != nil {
		f.fail(err)
		return err
	}
	f.flushed = true
	return nil
}

func (f *frameStream) fail(err error) {
	f.err = err
	if f.onFail != nil {
		f.onFail()
	}
}

// streamWriter is the io.Writer given to os/exec for one output stream.
type streamWriter struct {
	out *frameStream
	typ byte
}

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.out.write(w.typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	cmd, err := s.prepare(req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	out := &frameStream{w: w, rc: http.NewResponseController(w)}
	head := time.AfterFunc(headerDelay, out.flushHead)
	res, err := s.run(r.Context(), cmd, req.TimeoutMS, out)
	head.Stop()
	var typ byte
	var payload []byte
	if err != nil {
		typ = FrameError
		payload, _ = json.Marshal(s.errorBody(r, err))
	} else {
		typ = FrameExit
		payload, _ = json.Marshal(res)
	}
	out.finish(typ, payload)
}

// prepare validates req and builds the command, without resolving or
// starting the program: failures here are answered as HTTP errors, while a
// program that cannot start is reported in the stream (FrameError).
func (s *Server) prepare(req ExecRequest) (*exec.Cmd, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, errs.New(errs.Invalid, "argv must name a program")
	}
	if req.TimeoutMS < 0 {
		return nil, errs.New(errs.Invalid, "timeout_ms must not be negative")
	}
	wd := s.opts.DefaultWorkdir
	if req.Workdir != "" {
		var err error
		if wd, err = cleanPath(req.Workdir); err != nil {
			return nil, errs.New(errs.Invalid, "workdir %q must be an absolute path", req.Workdir)
		}
	}
	if fi, err := s.fs.Stat(wd); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "workdir %s does not exist or is not accessible", wd)
	} else if !fi.IsDir() {
		return nil, errs.New(errs.Invalid, "workdir %s is not a directory", wd)
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, errs.New(errs.Invalid, "env entry %q is not a valid variable name or value", k)
		}
	}
	cmd := &exec.Cmd{
		Args:        req.Argv,
		Env:         mergeEnv(os.Environ(), req.Env),
		Dir:         s.fs.HostPath(wd),
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if s.opts.ExecWrapper != "" {
		// The wrapper resolves and runs argv inside the sandbox; the
		// agent's own PATH lookup never sees the program.
		cmd.Args = append([]string{s.opts.ExecWrapper, wd}, req.Argv...)
	}
	return cmd, nil
}

// run starts cmd, streams its output into out, and waits for it. Expiry of
// the timeout or cancellation of ctx (the host hung up) kills the whole
// process group. The error is non-nil only when the process did not start.
func (s *Server) run(ctx context.Context, cmd *exec.Cmd, timeoutMS int64, out *frameStream) (ExecResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Beyond ~292 years the Duration would overflow; that is no limit anyway.
	if timeoutMS > 0 && timeoutMS < math.MaxInt64/int64(time.Millisecond) {
		tctx, tcancel := context.WithTimeoutCause(ctx, time.Duration(timeoutMS)*time.Millisecond, errExecTimeout)
		defer tcancel()
		ctx = tctx
	}
	out.onFail = func() { cancel(errors.New("host stopped reading")) }
	cmd.Stdout = streamWriter{out, FrameStdout}
	cmd.Stderr = streamWriter{out, FrameStderr}
	// WaitDelay: background grandchildren that keep the pipes open must not
	// hold the call; after the delay exec closes the pipes and returns.
	cmd.WaitDelay = waitDelay

	start := time.Now()
	prog, err := lookPath(cmd.Args[0], envValue(cmd.Env, "PATH"))
	if err != nil {
		s.log.Info("exec", "argv0", cmd.Args[0], "err", "executable not found")
		return ExecResult{}, err
	}
	cmd.Path = prog
	var status *os.File // read end of the wrapper's status pipe (ServerOptions.ExecWrapper)
	if s.opts.ExecWrapper != "" {
		r, w, err := os.Pipe()
		if err != nil {
			return ExecResult{}, errs.Wrap(errs.Internal, err, "exec: status pipe")
		}
		status = r
		cmd.ExtraFiles = []*os.File{w}
		defer w.Close() // after Start only the child holds it
	}
	s.spawnMu.Lock()
	err = cmd.Start()
	s.spawnMu.Unlock()
	if err != nil {
		if status != nil {
			status.Close()
		}
		s.log.Info("exec", "argv0", cmd.Args[0], "err", startErrno(err))
		return ExecResult{}, startError(cmd.Args[0], err)
	}
	if status != nil {
		cmd.ExtraFiles[0].Close()
	}
	pgid := cmd.Process.Pid // Setpgid: the leader's pid names the group
	// Registered after Start so the kill never races Start writing
	// cmd.Process; an already-done ctx fires it at once.
	stop := context.AfterFunc(ctx, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	code, waitErr := waitExec(cmd, status)
	// Stop before the group can vanish and its id be reused.
	stop()
	res := ExecResult{DurationNS: int64(time.Since(start)), ExitCode: code}
	// A process that exited on its own just before the deadline (while
	// exec waited for its pipes) did not time out: only a kill counts.
	if context.Cause(ctx) == errExecTimeout && res.ExitCode == 128+int(syscall.SIGKILL) {
		res.ExitCode, res.TimedOut = -1, true
	}
	s.log.Debug("exec", "argv0", cmd.Args[0], "exit_code", res.ExitCode,
		"timed_out", res.TimedOut, "cancelled", ctx.Err() != nil && !res.TimedOut,
		"duration", time.Duration(res.DurationNS), "output_cut", errors.Is(waitErr, exec.ErrWaitDelay))
	return res, nil
}

// waitExec waits for cmd and returns its exit code. With a status pipe (a
// wrapped exec), the code the wrapper reports there ends the wait too: the
// wrapper is then given waitDelay to exit, and if it does not (it waits for
// background processes of the command) it is left running, reaped later,
// and the reported code is the result.
func waitExec(cmd *exec.Cmd, status *os.File) (int, error) {
	if status == nil {
		err := cmd.Wait()
		return exitCode(cmd.ProcessState), err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	reported := make(chan int, 1)
	go func() {
		defer status.Close()
		line, err := bufio.NewReader(status).ReadString('\n')
		if code, convErr := strconv.Atoi(strings.TrimSpace(line)); err == nil && convErr == nil && code >= 0 && code <= 255 {
			reported <- code
		}
		// EOF (the wrapper and its shell are gone) or a malformed line:
		// nothing is reported, and the exec waits for the wrapper.
	}()
	select {
	case err := <-done:
		return exitCode(cmd.ProcessState), err
	case code := <-reported:
		select {
		case err := <-done:
			return exitCode(cmd.ProcessState), err
		case <-time.After(waitDelay):
			return code, exec.ErrWaitDelay
		}
	}
}

// exitCode follows the shell convention: 128+N when killed by signal N.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func startErrno(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "start failed"
}

// startError classifies a failure to start argv0. The message names argv0
// as the caller wrote it, never a resolved host path.
func startError(argv0 string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP:
			return errs.Wrap(errs.Invalid, err, "exec: %q: %s", argv0, errno.Error())
		case syscall.E2BIG:
			return errs.Wrap(errs.TooLarge, err, "exec: %q: argument list too long", argv0)
		}
		return errs.Wrap(errs.Internal, err, "exec: %q: %s", argv0, errno.Error())
	}
	return errs.Wrap(errs.Internal, err, "exec: %q: could not start", argv0)
}

// lookPath resolves a bare program name against pathEnv, the PATH the
// process will see (the request may override the agent's). Names with a
// slash are used as given; relative ones resolve against the workdir.
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(dir) {
			continue // "." and friends in PATH would make lookups depend on the workdir
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errs.Wrap(errs.Invalid, exec.ErrNotFound, "%s", (&exec.Error{Name: name, Err: exec.ErrNotFound}).Error())
}

// mergeEnv overlays over on base (KEY=VALUE entries); later keys win.
func mergeEnv(base []string, over map[string]string) []string {
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := over[k]; !replaced {
			out = append(out, kv)
		}
	}
	for k, v := range over {
		out = append(out, k+"="+v)
	}
	return out
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}
