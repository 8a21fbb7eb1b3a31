package api

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// InteractiveService is what the interactive routes (WebSocket exec and
// background processes) need from the sandbox domain. sandbox.Service and
// sandbox.Audited implement it; a Service without it answers those routes
// with a typed "not supported" error.
type InteractiveService interface {
	OpenSession(ctx context.Context, id string, req sandbox.ProcessRequest) (*sandbox.Session, error)
	StartProcess(ctx context.Context, id string, req sandbox.ProcessRequest) (agent.ProcessInfo, error)
	ListProcesses(ctx context.Context, id string) ([]agent.ProcessInfo, error)
	GetProcess(ctx context.Context, id, pid string) (agent.ProcessInfo, error)
	ProcessOutput(ctx context.Context, id, pid string, offset int64, follow bool, fn func(agent.OutputChunk) error) (*agent.ExecResult, error)
	ProcessStdin(ctx context.Context, id, pid string, data io.Reader, size int64, eof bool) error
	SignalProcess(ctx context.Context, id, pid, signal string) error
	ResizeProcess(ctx context.Context, id, pid string, cols, rows int) error
	KillProcess(ctx context.Context, id, pid string) (agent.ProcessInfo, error)
}

var (
	_ InteractiveService = (*sandbox.Service)(nil)
	_ InteractiveService = (*sandbox.Audited)(nil)
)

func (s *server) interactive() (InteractiveService, error) {
	is, ok := s.svc.(InteractiveService)
	if !ok {
		return nil, errs.New(errs.Unavailable, "interactive sessions and background processes are not supported by this server")
	}
	return is, nil
}

// processBody starts a background process: the exec body plus terminal,
// stdin and output ring options.
type processBody struct {
	Command     string            `json:"command"`
	Args        []string          `json:"args"`
	Mode        string            `json:"mode"`
	Env         map[string]string `json:"env"`
	Workdir     string            `json:"workdir"`
	Timeout     string            `json:"timeout"`
	TTY         bool              `json:"tty"`
	Cols        int               `json:"cols"`
	Rows        int               `json:"rows"`
	Stdin       bool              `json:"stdin"`
	OutputLimit int               `json:"output_limit"`
}

// toRequest checks the body's syntax (the service checks the rest).
func (b processBody) toRequest() (sandbox.ProcessRequest, error) {
	switch b.Mode {
	case "", sandbox.ModeShell, sandbox.ModeArgv:
	default:
		return sandbox.ProcessRequest{}, errs.New(errs.Invalid, "field \"mode\" must be \"shell\" or \"argv\", got %q", b.Mode)
	}
	if b.Command == "" {
		if b.Mode == sandbox.ModeArgv {
			return sandbox.ProcessRequest{}, errs.New(errs.Invalid, "argv mode requires a command")
		}
		return sandbox.ProcessRequest{}, errs.New(errs.Invalid, "field \"command\" is required")
	}
	timeout, err := parseDuration("timeout", b.Timeout)
	if err != nil {
		return sandbox.ProcessRequest{}, err
	}
	return sandbox.ProcessRequest{Command: b.Command, Args: b.Args, Mode: b.Mode, Env: b.Env, Workdir: b.Workdir,
		Timeout: timeout, TTY: b.TTY, Cols: b.Cols, Rows: b.Rows, Stdin: b.Stdin, OutputLimit: b.OutputLimit}, nil
}

func (s *server) startProcess(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	var b processBody
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	req, err := b.toRequest()
	if err != nil {
		return err
	}
	info, err := is.StartProcess(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, info)
	return nil
}

func (s *server) listProcesses(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	list, err := is.ListProcesses(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeList(w, list)
	return nil
}

func (s *server) getProcess(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	info, err := is.GetProcess(r.Context(), r.PathValue("id"), r.PathValue("pid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *server) killProcess(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	info, err := is.KillProcess(r.Context(), r.PathValue("id"), r.PathValue("pid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *server) signalProcess(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	var b struct {
		Signal string `json:"signal"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := requireField("signal", b.Signal); err != nil {
		return err
	}
	if err := is.SignalProcess(r.Context(), r.PathValue("id"), r.PathValue("pid"), b.Signal); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "signaled"})
	return nil
}

func (s *server) resizeProcess(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	var b struct {
		Cols int `json:"cols"`
		Rows int `json:"rows"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := is.ResizeProcess(r.Context(), r.PathValue("id"), r.PathValue("pid"), b.Cols, b.Rows); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "resized"})
	return nil
}

// processStdin takes either a JSON body {"data": "text", "eof": bool} or,
// with any other content type, the raw bytes to send (?eof=true closes
// stdin afterwards).
func (s *server) processStdin(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	var (
		data io.Reader
		size int64 = -1
		eof        = r.URL.Query().Get("eof") == "true" || r.URL.Query().Get("eof") == "1"
	)
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		var b struct {
			Data string `json:"data"`
			EOF  bool   `json:"eof"`
		}
		if err := s.decodeJSON(w, r, &b, true); err != nil {
			return err
		}
		data, size, eof = strings.NewReader(b.Data), int64(len(b.Data)), eof || b.EOF
	} else {
		if r.ContentLength > s.maxUpload {
			return &http.MaxBytesError{Limit: s.maxUpload}
		}
		data, size = http.MaxBytesReader(w, r.Body, s.maxUpload), r.ContentLength
	}
	if err := is.ProcessStdin(r.Context(), r.PathValue("id"), r.PathValue("pid"), data, size, eof); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "written"})
	return nil
}

// processOutput streams a process's output from ?offset= (default 0),
// following it with ?follow=true until the process exits. NDJSON by
// default: {"stream":"stdout"|"stderr","data":"...","offset":N} per chunk
// (offset counts raw bytes; a jump means bytes were dropped from the
// ring), then {"stream":"exit","data":"","exit_code":N} once the process
// has exited. With "Accept: application/octet-stream" the raw bytes come
// instead, the offset of the first one in X-Output-Offset and the exit code
// in the X-Exit-Code trailer; a raw stream that would skip dropped bytes
// ends there, and the client reconnects from its offset.
func (s *server) processOutput(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var offset int64
	if v := q.Get("offset"); v != "" {
		offset, err = strconv.ParseInt(v, 10, 64)
		if err != nil || offset < 0 {
			return errs.New(errs.Invalid, "query parameter \"offset\" must be a whole number of bytes, 0 or more")
		}
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		if follow, err = strconv.ParseBool(v); err != nil {
			return errs.New(errs.Invalid, "query parameter \"follow\" must be true or false")
		}
	}
	id, pid := r.PathValue("id"), r.PathValue("pid")
	// Resolve the process first so an unknown one is a plain 404.
	info, err := is.GetProcess(r.Context(), id, pid)
	if err != nil {
		return err
	}
	if offset > info.OutputEnd {
		return errs.New(errs.Invalid, "offset %d is past the end of the output (%d bytes so far)", offset, info.OutputEnd)
	}
	rc := http.NewResponseController(w)
	// An hour-long follow must not be cut by a server write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	if accepts(r, "application/octet-stream") {
		return s.rawOutput(w, r, is, id, pid, max(offset, info.OutputStart), follow)
	}
	out := &ndjson{w: w, bw: bufio.NewWriterSize(w, 16<<10), rc: rc}
	defer func() {
		out.mu.Lock()
		out.closed = true
		out.mu.Unlock()
	}()
	out.start()
	sinks := map[byte]*offsetSink{}
	res, err := is.ProcessOutput(r.Context(), id, pid, offset, follow, func(c agent.OutputChunk) error {
		name := "stdout"
		if c.Stream == agent.FrameStderr {
			name = "stderr"
		}
		sk := sinks[c.Stream]
		if sk == nil {
			sk = &offsetSink{out: out, name: name}
			sinks[c.Stream] = sk
		}
		return sk.write(c.Offset, c.Data)
	})
	for _, sk := range sinks {
		sk.flush()
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client left
		}
		_, code, msg := s.publicError(r, err)
		_ = out.write(streamLine{Stream: "error", Data: msg, Code: code})
		return nil
	}
	if res != nil {
		exit := res.ExitCode
		_ = out.write(streamLine{Stream: "exit", ExitCode: &exit, TimedOut: res.TimedOut})
	}
	return nil
}

// offsetSink writes NDJSON output lines with the raw offset of their first
// byte, holding back a rune split across chunks (like streamSink).
type offsetSink struct {
	out     *ndjson
	name    string
	pending []byte
	pendOff int64
}

func (o *offsetSink) write(off int64, p []byte) error {
	data, start := p, off
	if len(o.pending) > 0 && o.pendOff+int64(len(o.pending)) == off {
		data, start = append(o.pending, p...), o.pendOff
	} else if len(o.pending) > 0 {
		o.flush() // a gap: the held bytes stand alone
	}
	keep := incompleteTail(data)
	o.pending = append(o.pending[:0:0], data[len(data)-keep:]...)
	o.pendOff = start + int64(len(data)-keep)
	data = data[:len(data)-keep]
	if len(data) == 0 {
		return nil
	}
	return o.out.writeOffsetData(o.name, start, data)
}

func (o *offsetSink) flush() {
	if len(o.pending) > 0 {
		_ = o.out.writeOffsetData(o.name, o.pendOff, o.pending)
		o.pending = nil
	}
}

// writeOffsetData sends {"stream":name,"data":...,"offset":N} and flushes.
func (n *ndjson) writeOffsetData(name string, off int64, data []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errs.New(errs.Internal, "stream closed")
	}
	n.startLocked()
	n.bw.WriteString(`{"stream":"`)
	n.bw.WriteString(name)
	n.bw.WriteString(`","data":`)
	writeJSONString(n.bw, data)
	n.bw.WriteString(`,"offset":`)
	n.bw.WriteString(strconv.FormatInt(off, 10))
	n.bw.WriteString("}\n")
	if err := n.bw.Flush(); err != nil {
		return err
	}
	return n.rc.Flush()
}

// errGap stops a raw output stream at bytes dropped from the ring.
var errGap = errs.New(errs.Conflict, "output was dropped from the ring; reconnect from the current offset")

func (s *server) rawOutput(w http.ResponseWriter, r *http.Request, is InteractiveService, id, pid string, from int64, follow bool) error {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Output-Offset", strconv.FormatInt(from, 10))
	h.Set("Trailer", "X-Exit-Code")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	next := from
	res, err := is.ProcessOutput(r.Context(), id, pid, from, follow, func(c agent.OutputChunk) error {
		if c.Offset != next {
			return errGap
		}
		if _, err := w.Write(c.Data); err != nil {
			return err
		}
		next += int64(len(c.Data))
		return rc.Flush()
	})
	if err == nil && res != nil {
		h.Set("X-Exit-Code", strconv.Itoa(res.ExitCode))
	}
	return nil
}

// accepts reports whether the Accept header names media type mt.
func accepts(r *http.Request, mt string) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if t, _, _ := strings.Cut(strings.TrimSpace(part), ";"); strings.EqualFold(t, mt) {
			return true
		}
	}
	return false
}
