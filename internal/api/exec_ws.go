package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// WebSocket exec (API.md): GET /sandboxes/{id}/exec/ws. The first client
// message starts the process: {command, args?, mode?, env?, workdir?, tty?,
// cols?, rows?, timeout?}. The server then sends {"stream":"stdout"|
// "stderr","data":"..."} text messages and a final {"stream":"exit",
// "data":"","exit_code":N}; the client may send {"stdin":"..."} (or a
// binary message: raw stdin bytes), {"resize":{"cols":C,"rows":R}},
// {"signal":"SIGINT"} and {"eof":true} (close stdin; Ctrl-D on a TTY).
//
// By default the process lives as long as the socket: closing it (or
// losing it: pings every wsPingInterval find dead peers) kills the process
// and everything it started. With "detached": true the socket starts a
// background process and attaches to it; with "process_id" (and "offset")
// it attaches to an existing one. Then the first server message is
// {"stream":"process","process_id","pid","offset"}, output messages carry
// their raw byte "offset", and closing the socket leaves the process running. Failures after the upgrade are an {"stream":"error","code",
// "message"} message followed by a close with code 4000+HTTP status (4400
// bad request, 4404 unknown sandbox, 4409 not running, 4503 unavailable)
// and the error code as reason. A client message over wsReadLimit bytes is
// closed with 1009 (message too big).

// Limits of a WebSocket exec.
const (
	wsReadLimit         = 1 << 20 // bytes per client message
	wsStartTimeout      = 30 * time.Second
	wsPingInterval      = 30 * time.Second
	wsPingTimeout       = 30 * time.Second
	wsCloseStatusOffset = 4000
)

// wsStart is the first client message.
type wsStart struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Mode    string            `json:"mode"`
	Env     map[string]string `json:"env"`
	Workdir string            `json:"workdir"`
	Timeout string            `json:"timeout"`
	TTY     bool              `json:"tty"`
	Cols    int               `json:"cols"`
	Rows    int               `json:"rows"`
	// Detached starts a background process (as POST .../processes with
	// stdin) and attaches to it: closing the socket leaves it running.
	Detached    bool `json:"detached"`
	OutputLimit int  `json:"output_limit"`
	// ProcessID attaches to an existing background process instead, from
	// output offset Offset (0: everything still kept).
	ProcessID string `json:"process_id"`
	Offset    int64  `json:"offset"`
}

// wsInput is any later client message.
type wsInput struct {
	Stdin  *string `json:"stdin"`
	Resize *struct {
		Cols int `json:"cols"`
		Rows int `json:"rows"`
	} `json:"resize"`
	Signal string `json:"signal"`
	EOF    bool   `json:"eof"`
}

// wsError is the message sent before a failure close.
type wsError struct {
	Stream  string `json:"stream"` // "error"
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *server) execWS(w http.ResponseWriter, r *http.Request) error {
	is, err := s.interactive()
	if err != nil {
		return err
	}
	if !s.OriginAllowed(r) {
		return errs.New(errs.Forbidden, "origin %q may not open WebSockets on this server (server.cors_allowed_origins)", r.Header.Get("Origin"))
	}
	id := r.PathValue("id")
	// Answer an unknown sandbox before the upgrade, as a plain 404.
	if _, err := s.svc.Get(r.Context(), id); err != nil {
		return err
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, with the server's policy
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return nil // Accept answered the request
	}
	conn.SetReadLimit(wsReadLimit)
	ws := &wsExec{s: s, r: r, conn: conn}
	defer conn.CloseNow()
	ws.run(r.Context(), is, id)
	return nil
}

// wsExec is one WebSocket exec.
type wsExec struct {
	s    *server
	r    *http.Request
	conn *websocket.Conn
	once sync.Once // the close status is decided once
}

// fail sends err as an error message and closes with 4000+status.
func (x *wsExec) fail(ctx context.Context, err error) {
	x.once.Do(func() {
		status, code, msg := x.s.publicError(x.r, err)
		b, _ := json.Marshal(wsError{Stream: "error", Code: code, Message: msg})
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = x.conn.Write(wctx, websocket.MessageText, b)
		_ = x.conn.Close(websocket.StatusCode(wsCloseStatusOffset+status), code)
	})
}

func (x *wsExec) closeNormal() {
	x.once.Do(func() { _ = x.conn.Close(websocket.StatusNormalClosure, "") })
}

func (x *wsExec) run(ctx context.Context, is InteractiveService, id string) {
	st, err := x.readStart(ctx)
	if err != nil {
		if err != errPeerGone {
			x.fail(ctx, err)
		}
		return
	}
	if st.ProcessID != "" || st.Detached {
		x.runAttached(ctx, is, id, st)
		return
	}
	req, err := st.request()
	if err != nil {
		x.fail(ctx, err)
		return
	}
	sess, err := is.OpenSession(ctx, id, req)
	if err != nil {
		x.fail(ctx, err)
		return
	}
	defer sess.Close()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		// The client's side: input until it closes or breaks the socket,
		// which ends the session (the agent kills the process). A bad
		// message fails the socket. Input the session can no longer take
		// (the process exited and the agent closed its end) is dropped:
		// the exit frame may still be on its way, and Wait reports it.
		if err := x.input(ctx, sessionInput{sess}); err != nil {
			x.fail(ctx, err)
		}
		sess.Close()
	}()
	go func() {
		defer wg.Done()
		x.ping(ctx, func() { sess.Close() })
	}()

	stdout := &wsSink{ctx: ctx, conn: x.conn, name: "stdout", offset: -1}
	stderr := &wsSink{ctx: ctx, conn: x.conn, name: "stderr", offset: -1}
	res, err := sess.Wait(stdout, stderr)
	stdout.flush()
	stderr.flush()
	if err != nil {
		x.fail(ctx, err)
		return
	}
	x.exit(ctx, res.ExitCode, res.TimedOut)
}

// exit sends the exit message and closes normally.
func (x *wsExec) exit(ctx context.Context, code int, timedOut bool) {
	b, _ := json.Marshal(streamLine{Stream: "exit", ExitCode: &code, TimedOut: timedOut})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	_ = x.conn.Write(wctx, websocket.MessageText, b)
	wcancel()
	x.closeNormal()
}

// wsProcessMessage tells an attached client which process it is on.
type wsProcessMessage struct {
	Stream    string `json:"stream"` // "process"
	ProcessID string `json:"process_id"`
	PID       int    `json:"pid"`
	Offset    int64  `json:"offset"` // where the output that follows starts
}

// runAttached starts a detached background process (Detached) or attaches
// to an existing one (ProcessID): its output from Offset is followed, and
// input goes to it, but the socket's end leaves it running.
func (x *wsExec) runAttached(ctx context.Context, is InteractiveService, id string, st wsStart) {
	pid, offset := st.ProcessID, st.Offset
	if offset < 0 {
		x.fail(ctx, errs.New(errs.Invalid, "offset must not be negative"))
		return
	}
	var info agent.ProcessInfo
	var err error
	if pid == "" {
		req, rerr := st.request()
		if rerr != nil {
			x.fail(ctx, rerr)
			return
		}
		req.Stdin = true
		info, err = is.StartProcess(ctx, id, req)
	} else {
		info, err = is.GetProcess(ctx, id, pid)
		if err == nil && offset > info.OutputEnd {
			err = errs.New(errs.Invalid, "offset %d is past the end of the output (%d bytes so far)", offset, info.OutputEnd)
		}
	}
	if err != nil {
		x.fail(ctx, err)
		return
	}
	pid = info.ID
	b, _ := json.Marshal(wsProcessMessage{Stream: "process", ProcessID: pid, PID: info.PID, Offset: max(offset, info.OutputStart)})
	if err := x.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	target := &procTarget{ctx: ctx, is: is, id: id, pid: pid}
	wg.Add(2)
	go func() {
		defer wg.Done()
		// The socket's end only stops this attachment (cancel ends the
		// follow below); the process keeps running.
		// An input the process cannot take (no stdin, no terminal) fails
		// the socket with its code, unless the process just exited: then
		// the follow below ends with the exit message.
		if err := x.input(ctx, target); err != nil {
			if info, gerr := is.GetProcess(ctx, id, pid); errs.Is(err, errs.Invalid) || gerr != nil || info.Running {
				x.fail(ctx, err)
				cancel()
			}
			return
		}
		cancel()
	}()
	go func() {
		defer wg.Done()
		x.ping(ctx, cancel)
	}()
	sinks := map[byte]*wsSink{}
	res, err := is.ProcessOutput(ctx, id, pid, offset, true, func(c agent.OutputChunk) error {
		sk := sinks[c.Stream]
		if sk == nil {
			name := "stdout"
			if c.Stream == agent.FrameStderr {
				name = "stderr"
			}
			sk = &wsSink{ctx: ctx, conn: x.conn, name: name}
			sinks[c.Stream] = sk
		}
		return sk.writeAt(c.Offset, c.Data)
	})
	for _, sk := range sinks {
		sk.flush()
	}
	switch {
	case ctx.Err() != nil:
		// The client left (or failed); nothing more to say.
	case err != nil:
		x.fail(ctx, err)
	case res != nil:
		x.exit(ctx, res.ExitCode, res.TimedOut)
	}
}

// procTarget sends a client's input to a background process.
type procTarget struct {
	ctx     context.Context
	is      InteractiveService
	id, pid string
}

func (p *procTarget) Stdin(b []byte) error {
	return p.is.ProcessStdin(p.ctx, p.id, p.pid, bytes.NewReader(b), int64(len(b)), false)
}

func (p *procTarget) CloseStdin() error {
	return p.is.ProcessStdin(p.ctx, p.id, p.pid, nil, 0, true)
}

func (p *procTarget) Resize(cols, rows int) error {
	return p.is.ResizeProcess(p.ctx, p.id, p.pid, cols, rows)
}

func (p *procTarget) Signal(name string) error {
	return p.is.SignalProcess(p.ctx, p.id, p.pid, name)
}

// sessionInput sends a client's input to a session, dropping input that
// fails for any reason but a bad message. Such a failure means the agent's
// end is gone: the process exited (the agent sends the exit frame, then
// closes) or the connection broke (Wait fails). Either way Wait ends on its
// own; closing the session here instead would race the exit frame still
// unread on the connection (a shell fed "...; exit 3" and then EOF used to
// lose its exit status this way).
type sessionInput struct{ s *sandbox.Session }

func (in sessionInput) drop(err error) error {
	if errs.Is(err, errs.Invalid) {
		return err
	}
	return nil
}

func (in sessionInput) Stdin(p []byte) error        { return in.drop(in.s.Stdin(p)) }
func (in sessionInput) CloseStdin() error           { return in.drop(in.s.CloseStdin()) }
func (in sessionInput) Resize(cols, rows int) error { return in.drop(in.s.Resize(cols, rows)) }
func (in sessionInput) Signal(name string) error    { return in.drop(in.s.Signal(name)) }

// wsTarget is where a client's input goes: a session or a process.
type wsTarget interface {
	Stdin(p []byte) error
	CloseStdin() error
	Resize(cols, rows int) error
	Signal(name string) error
}

var (
	_ wsTarget = (*sandbox.Session)(nil)
	_ wsTarget = sessionInput{}
	_ wsTarget = (*procTarget)(nil)
)

// errPeerGone means the client closed the socket; nothing is left to tell.
var errPeerGone = errors.New("websocket peer gone")

func (x *wsExec) readStart(ctx context.Context) (wsStart, error) {
	rctx, cancel := context.WithTimeout(ctx, wsStartTimeout)
	defer cancel()
	typ, data, err := x.conn.Read(rctx)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return wsStart{}, errs.New(errs.Invalid, "no start message within %s", wsStartTimeout)
		}
		return wsStart{}, errPeerGone
	}
	if typ != websocket.MessageText {
		return wsStart{}, errs.New(errs.Invalid, "the first message must be a JSON text message {\"command\": ...}")
	}
	var st wsStart
	if err := strictJSON(data, &st); err != nil {
		return wsStart{}, err
	}
	return st, nil
}

// request checks a start message that starts a process.
func (st wsStart) request() (sandbox.ProcessRequest, error) {
	return processBody{Command: st.Command, Args: st.Args, Mode: st.Mode, Env: st.Env, Workdir: st.Workdir,
		Timeout: st.Timeout, TTY: st.TTY, Cols: st.Cols, Rows: st.Rows, OutputLimit: st.OutputLimit}.toRequest()
}

// strictJSON decodes one JSON object (unknown fields tolerated, like
// request bodies) with the same error messages as decodeJSON.
func strictJSON(data []byte, dst any) error {
	if err := json.Unmarshal(data, dst); err != nil {
		return decodeError(err)
	}
	return nil
}

// input applies client messages to t until the socket ends (nil) or a
// message fails (its error; the caller decides what that ends).
func (x *wsExec) input(ctx context.Context, t wsTarget) error {
	for {
		typ, data, err := x.conn.Read(ctx)
		if err != nil {
			return nil // closed by the client, too big (closed with 1009 already), or broken
		}
		if typ == websocket.MessageBinary {
			if err := t.Stdin(data); err != nil {
				return err
			}
			continue
		}
		var in wsInput
		if err := strictJSON(data, &in); err != nil {
			return err
		}
		switch {
		case in.Stdin != nil:
			err = t.Stdin([]byte(*in.Stdin))
		case in.Resize != nil:
			err = t.Resize(in.Resize.Cols, in.Resize.Rows)
		case in.Signal != "":
			err = t.Signal(in.Signal)
		case in.EOF:
			err = t.CloseStdin()
		default:
			return errs.New(errs.Invalid, "a message must hold one of stdin, resize, signal or eof")
		}
		if err != nil {
			return err
		}
	}
}

// ping keeps idle sessions alive through proxies and finds dead clients;
// on one it calls gone and drops the socket.
func (x *wsExec) ping(ctx context.Context, gone func()) {
	t := time.NewTicker(wsPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, wsPingTimeout)
		err := x.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				x.s.log.Info("websocket exec: client stopped answering pings; dropping it", "error", err.Error())
				gone()
				x.conn.CloseNow()
			}
			return
		}
	}
}

// wsSink sends one output stream as {"stream","data"} text messages
// (with "offset", the raw byte offset of the first byte, when attached to a
// background process), holding back a rune split across chunks.
type wsSink struct {
	ctx     context.Context
	conn    *websocket.Conn
	name    string
	offset  int64 // next raw offset; -1: sessions send none
	pending []byte
	scratch []byte
}

func (o *wsSink) Write(p []byte) (int, error) {
	if err := o.writeAt(o.offset, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeAt sends p, which starts at raw offset off (ignored for sessions).
func (o *wsSink) writeAt(off int64, p []byte) error {
	data := p
	if len(o.pending) > 0 && (o.offset < 0 || off == o.offset) {
		data = append(o.pending, p...)
	} else if len(o.pending) > 0 {
		o.flush() // a gap: the held bytes stand alone
	}
	start := off - int64(len(data)-len(p))
	keep := incompleteTail(data)
	o.pending = append(o.pending[:0:0], data[len(data)-keep:]...)
	data = data[:len(data)-keep]
	if o.offset >= 0 || off >= 0 {
		o.offset = off + int64(len(p))
	}
	if len(data) == 0 {
		return nil
	}
	return o.send(start, data)
}

func (o *wsSink) send(start int64, data []byte) error {
	o.scratch = appendOutputMessage(o.scratch[:0], o.name, data)
	if start >= 0 {
		o.scratch = append(o.scratch[:len(o.scratch)-1], `,"offset":`...)
		o.scratch = strconv.AppendInt(o.scratch, start, 10)
		o.scratch = append(o.scratch, '}')
	}
	return o.conn.Write(o.ctx, websocket.MessageText, o.scratch)
}

func (o *wsSink) flush() {
	if len(o.pending) > 0 {
		start := int64(-1)
		if o.offset >= 0 {
			start = o.offset - int64(len(o.pending))
		}
		_ = o.send(start, o.pending)
		o.pending = nil
	}
}

// appendOutputMessage appends {"stream":name,"data":"..."} to b.
func appendOutputMessage(b []byte, name string, data []byte) []byte {
	s, _ := json.Marshal(string(data)) // invalid UTF-8 becomes U+FFFD
	b = append(b, `{"stream":"`...)
	b = append(b, name...)
	b = append(b, `","data":`...)
	b = append(b, s...)
	return append(b, '}')
}
