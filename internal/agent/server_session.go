package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Interactive sessions: POST /v1/session with a ProcessSpec body and
// "Connection: Upgrade", "Upgrade: stacyvm-session". The agent validates the
// spec and starts the process before answering, so a bad request or a
// program that cannot start is a plain HTTP error. On success it answers
// 101 (with the pid in HeaderPID) and the connection carries frames both
// ways (protocol.go). The process lives exactly as long as the connection:
// when the host closes it, or it breaks, the agent kills the process's whole
// session. When the process exits, the agent sends the remaining output and
// the exit frame, then closes the connection.

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	var spec ProcessSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.Header.Get("Upgrade") != SessionProtocol {
		s.writeError(w, r, errs.New(errs.Invalid, "a session needs \"Upgrade: %s\"", SessionProtocol))
		return
	}
	if spec.TimeoutMS < 0 {
		s.writeError(w, r, errs.New(errs.Invalid, "timeout_ms must not be negative"))
		return
	}
	c, err := s.startChild(spec, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		c.kill()
		c.finish(r.Context(), 0, func() {})
		s.writeError(w, r, errs.Wrap(errs.Internal, err, "hijack session connection"))
		return
	}
	// The request's context ends with this handler; the session lives on the
	// connection instead, which has no deadline (an idle terminal may sit
	// for hours).
	conn.SetDeadline(time.Time{})
	// runSession returns when the session ends; until then r's context
	// stays valid, and the agent's shutdown cancels it (killing the process).
	s.runSession(r.Context(), conn, brw, c, spec.TimeoutMS)
}

// sessionConn serialises frames from the output pumps onto the connection.
type sessionConn struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	err error
}

func (sc *sessionConn) write(typ byte, p []byte) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.err != nil {
		return sc.err
	}
	for {
		n := min(len(p), MaxFrame)
		if err := WriteFrame(sc.bw, typ, p[:n]); err != nil {
			sc.err = err
			return err
		}
		if p = p[n:]; len(p) == 0 {
			break
		}
	}
	if err := sc.bw.Flush(); err != nil {
		sc.err = err
	}
	return sc.err
}

func (s *Server) runSession(ctx context.Context, conn net.Conn, brw *bufio.ReadWriter, c *child, timeoutMS int64) {
	defer conn.Close()
	out := &sessionConn{bw: brw.Writer}
	head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + SessionProtocol +
		"\r\n" + HeaderPID + ": " + strconv.Itoa(c.pid) + "\r\n\r\n"
	_, err := brw.WriteString(head)
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		c.kill()
		c.finish(ctx, 0, c.pump(func(byte, []byte) error { return nil }))
		return
	}

	// The host's side: input frames until it closes the connection, which
	// ends the session (ctx cancels finish, which kills the process).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer cancel()
		if err := s.sessionInput(ctx, brw.Reader, c); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("session input ended", "pid", c.pid, "err", err)
		}
	}()
	pumped := c.pump(func(typ byte, p []byte) error {
		if err := out.write(typ, p); err != nil {
			cancel() // the host stopped reading: end the session
			return err
		}
		return nil
	})
	res := c.finish(ctx, timeoutMS, pumped)
	payload, _ := json.Marshal(res)
	_ = out.write(FrameExit, payload)
	s.log.Debug("session", "argv0", c.argv0, "exit_code", res.ExitCode, "timed_out", res.TimedOut,
		"duration", res.Duration())
	conn.Close()
	<-inputDone
}

// sessionInput applies the host's frames to the process until the
// connection ends or a frame is malformed.
func (s *Server) sessionInput(ctx context.Context, r io.Reader, c *child) error {
	buf := make([]byte, 0, 32<<10)
	for {
		typ, payload, err := ReadFrame(r, buf)
		if err != nil {
			return err
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0]
		}
		if err := s.applyInput(ctx, c, typ, payload); err != nil {
			// A bad frame is the host's bug; a closed stdin or a finished
			// process is a race with the exit and not worth ending for.
			if errs.Is(err, errs.Invalid) {
				return err
			}
			s.log.Debug("session input", "pid", c.pid, "frame", typ, "err", err)
		}
	}
}

func (s *Server) applyInput(ctx context.Context, c *child, typ byte, payload []byte) error {
	switch typ {
	case FrameStdin:
		// Bounded: a process that stops reading its stdin must not hold the
		// input loop (and with it resize and signal frames) forever.
		ctx, cancel := context.WithTimeout(ctx, stdinWriteTimeout)
		defer cancel()
		return c.writeStdin(ctx, payload)
	case FrameStdinEOF:
		return c.closeStdin()
	case FrameResize:
		if len(payload) != 4 {
			return errs.New(errs.Invalid, "resize frame must carry 4 bytes, got %d", len(payload))
		}
		return c.resize(binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4]))
	case FrameSignal:
		sig, err := ParseSignal(string(payload))
		if err != nil {
			return err
		}
		return c.signal(sig)
	default:
		return errs.New(errs.Invalid, "unknown session frame type %d", typ)
	}
}

// stdinWriteTimeout bounds one stdin write of a session.
const stdinWriteTimeout = 30 * time.Second
