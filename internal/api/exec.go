package api

import (
	"bufio"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// maxExecOutput caps each of stdout and stderr in a synchronous exec
// response; beyond it the first part is kept and "truncated" is set.
const maxExecOutput = 16 << 20

// streamGrace is how long a streaming exec waits for its first output before
// sending the 200 header anyway. Errors found within it (unknown sandbox,
// limits) still get a normal JSON error response.
const streamGrace = 50 * time.Millisecond

// execBody is the body of POST /sandboxes/{id}/exec.
type execBody struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Mode    string            `json:"mode"`
	Env     map[string]string `json:"env"`
	Workdir string            `json:"workdir"`
	Timeout string            `json:"timeout"`
	Stream  bool              `json:"stream"`
}

func (s *server) exec(w http.ResponseWriter, r *http.Request) error {
	var b execBody
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	switch b.Mode {
	case "", sandbox.ModeShell, sandbox.ModeArgv:
	default:
		return errs.New(errs.Invalid, "field \"mode\" must be \"shell\" or \"argv\", got %q", b.Mode)
	}
	if b.Command == "" {
		if b.Mode == sandbox.ModeArgv {
			return errs.New(errs.Invalid, "argv mode requires a command")
		}
		return errs.New(errs.Invalid, "field \"command\" is required")
	}
	timeout, err := parseDuration("timeout", b.Timeout)
	if err != nil {
		return err
	}
	req := sandbox.ExecRequest{
		Command: b.Command, Args: b.Args, Mode: b.Mode, Env: b.Env, Workdir: b.Workdir, Timeout: timeout,
	}
	id := r.PathValue("id")
	if b.Stream || acceptsNDJSON(r) {
		s.execStream(w, r, id, req)
		return nil
	}

	var stdout, stderr cappedBuffer
	res, err := s.svc.Exec(r.Context(), id, req, &stdout, &stderr)
	if err != nil {
		return err
	}
	if res.TimedOut {
		return errs.New(errs.Timeout, "command timed out after %s; its process group was killed", timedOutAfter(req, res))
	}
	writeExecResult(w, res, &stdout, &stderr)
	return nil
}

// writeExecResult writes the sync exec result ({exit_code, stdout, stderr, duration, truncated?}), escaping the captured
// output straight into the response instead of building the document in
// memory (output may be tens of megabytes).
func writeExecResult(w http.ResponseWriter, res sandbox.ExecResult, stdout, stderr *cappedBuffer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out, errOut := stdout.bytes(), stderr.bytes()
	// Small results (most commands) need a small buffer; large ones are
	// escaped through at most 64 KiB at a time.
	bw := bufio.NewWriterSize(w, min(256+len(out)+len(errOut), 64<<10))
	bw.WriteString(`{"exit_code":`)
	bw.WriteString(strconv.Itoa(res.ExitCode))
	bw.WriteString(`,"stdout":`)
	writeJSONString(bw, out)
	bw.WriteString(`,"stderr":`)
	writeJSONString(bw, errOut)
	bw.WriteString(`,"duration":`)
	writeJSONString(bw, []byte(res.Duration.String()))
	if stdout.truncated || stderr.truncated {
		bw.WriteString(`,"truncated":true`)
	}
	bw.WriteString("}\n")
	bw.Flush()
}

func timedOutAfter(req sandbox.ExecRequest, res sandbox.ExecResult) time.Duration {
	if req.Timeout > 0 {
		return req.Timeout
	}
	return res.Duration.Round(time.Millisecond)
}

// acceptsNDJSON reports whether the Accept header asks for an NDJSON stream.
func acceptsNDJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/x-ndjson" {
			return true
		}
	}
	return false
}

// cappedBuffer keeps the first maxExecOutput bytes written to it.
type cappedBuffer struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := maxExecOutput - len(c.buf)
	if len(p) > room {
		c.buf = append(c.buf, p[:room]...)
		c.truncated = true
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

// String returns the output as valid UTF-8; a rune cut by the cap is dropped.
func (c *cappedBuffer) String() string {
	return strings.ToValidUTF8(string(c.bytes()), "\uFFFD")
}

// bytes returns the captured output; a rune cut by the cap is dropped. Call
// it once the writers are done.
func (c *cappedBuffer) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	if c.truncated {
		b = b[:len(b)-incompleteTail(b)]
	}
	return b
}

// incompleteTail returns how many trailing bytes of b are the start of a
// multi-byte rune whose remaining bytes have not arrived yet.
func incompleteTail(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if !utf8.RuneStart(c) {
			continue
		}
		if c >= utf8.RuneSelf && !utf8.FullRune(b[len(b)-i:]) {
			return i
		}
		return 0
	}
	return 0
}

// streamLine is one NDJSON line of an exec stream.
type streamLine struct {
	Stream   string `json:"stream"`
	Data     string `json:"data"`
	ExitCode *int   `json:"exit_code,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Code     string `json:"code,omitempty"`
}

// ndjson serialises stream lines from the stdout and stderr goroutines and
// owns the decision of when the 200 header is sent.
type ndjson struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	bw      *bufio.Writer // over w; flushed after every line
	rc      *http.ResponseController
	started bool // the 200 header has been sent
	closed  bool // the handler has returned or answered with an error
}

// startLocked sends the stream header if nobody has answered yet. Callers
// hold mu.
func (n *ndjson) startLocked() {
	if n.started || n.closed {
		return
	}
	n.started = true
	// A stream lasts as long as its command (bounded by the exec timeout),
	// so the server-wide write timeout must not cut it.
	_ = n.rc.SetWriteDeadline(time.Time{})
	h := n.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	n.w.WriteHeader(http.StatusOK)
	_ = n.rc.Flush()
}

// start is startLocked for the grace timer.
func (n *ndjson) start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.startLocked()
}

// writeData sends one output line {"stream":name,"data":...} built straight
// from the bytes, and flushes it.
func (n *ndjson) writeData(name string, data []byte) error {
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
	n.bw.WriteString("}\n")
	if err := n.bw.Flush(); err != nil {
		return err
	}
	return n.rc.Flush()
}

// write sends one line and flushes it.
func (n *ndjson) write(l streamLine) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errs.New(errs.Internal, "stream closed")
	}
	n.startLocked()
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	n.bw.Write(b)
	n.bw.WriteByte('\n')
	if err := n.bw.Flush(); err != nil {
		return err
	}
	return n.rc.Flush()
}

// streamSink turns one output stream into lines, holding back a trailing
// incomplete rune until the next chunk so a multi-byte character split
// across chunks arrives intact; truly invalid bytes become U+FFFD.
type streamSink struct {
	out     *ndjson
	name    string
	pending []byte
}

func (s *streamSink) Write(p []byte) (int, error) {
	data := p
	if len(s.pending) > 0 {
		data = append(s.pending, p...)
	}
	keep := incompleteTail(data)
	s.pending = append(s.pending[:0:0], data[len(data)-keep:]...)
	data = data[:len(data)-keep]
	if len(data) == 0 {
		return len(p), nil
	}
	if err := s.out.writeData(s.name, data); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush emits any held-back bytes (an incomplete rune at EOF is invalid).
func (s *streamSink) flush() {
	if len(s.pending) > 0 {
		_ = s.out.writeData(s.name, s.pending)
		s.pending = nil
	}
}

// execStream runs an exec as an NDJSON stream. The client's disconnect
// cancels r.Context(), which makes the service kill the command.
func (s *server) execStream(w http.ResponseWriter, r *http.Request, id string, req sandbox.ExecRequest) {
	out := &ndjson{w: w, bw: bufio.NewWriterSize(w, 16<<10), rc: http.NewResponseController(w)}
	timer := time.AfterFunc(streamGrace, out.start)
	defer func() {
		timer.Stop()
		out.mu.Lock()
		out.closed = true
		out.mu.Unlock()
	}()
	stdout := &streamSink{out: out, name: "stdout"}
	stderr := &streamSink{out: out, name: "stderr"}
	res, err := s.svc.Exec(r.Context(), id, req, stdout, stderr)
	stdout.flush()
	stderr.flush()
	if err != nil {
		out.mu.Lock()
		started := out.started
		out.closed = !started
		out.mu.Unlock()
		if !started {
			s.writeError(w, r, err)
			return
		}
		_, code, msg := s.publicError(r, err)
		_ = out.write(streamLine{Stream: "error", Data: msg, Code: code})
		return
	}
	exit := res.ExitCode
	_ = out.write(streamLine{Stream: "exit", ExitCode: &exit, TimedOut: res.TimedOut})
}
