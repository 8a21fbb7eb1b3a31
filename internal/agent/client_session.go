package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Session is an interactive process on its own agent connection (see
// server_session.go). Wait reads its output; Stdin, CloseStdin, Resize and
// Signal may be called from other goroutines meanwhile. Close ends the
// session, which kills the process if it still runs. A session has no
// deadline of its own: it lasts until the process exits or Close.
type Session struct {
	PID  int
	conn net.Conn
	r    *bufio.Reader

	wmu       sync.Mutex
	closeOnce sync.Once
}

// OpenSession starts spec's process on a new connection. ctx bounds the
// start only, not the session.
func (c *Client) OpenSession(ctx context.Context, spec ProcessSpec) (*Session, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "encode session request")
	}
	conn, err := c.rawDial(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	sess, err := sessionHandshake(conn, body)
	if !stop() || ctx.Err() != nil {
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errs.Wrap(errs.Timeout, ctx.Err(), "starting the session timed out")
		}
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return sess, nil
}

func sessionHandshake(conn net.Conn, body []byte) (*Session, error) {
	head := "POST /v1/session HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: " + SessionProtocol +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed session answer")
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound && resp.Header.Get(HeaderProcesses) == "" {
			return nil, errAgentTooOld()
		}
		return nil, decodeError(resp)
	}
	pid, _ := strconv.Atoi(resp.Header.Get(HeaderPID))
	return &Session{PID: pid, conn: conn, r: br}, nil
}

func (s *Session) send(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := WriteFrame(s.conn, typ, p); err != nil {
		return errs.Wrap(errs.Unavailable, err, "session closed")
	}
	return nil
}

// Stdin sends p to the process's stdin (on a TTY: as typed keys).
func (s *Session) Stdin(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxFrame)
		if err := s.send(FrameStdin, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// CloseStdin ends the process's input (on a TTY: sends the EOF character).
func (s *Session) CloseStdin() error { return s.send(FrameStdinEOF, nil) }

// Resize sets the terminal size of a TTY session.
func (s *Session) Resize(cols, rows uint16) error {
	if cols == 0 || rows == 0 {
		return errs.New(errs.Invalid, "terminal size %dx%d: cols and rows must be at least 1", cols, rows)
	}
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:2], cols)
	binary.BigEndian.PutUint16(b[2:4], rows)
	return s.send(FrameResize, b[:])
}

// Signal sends a signal by name ("SIGINT") to the process group (on a TTY,
// to the terminal's foreground group, like a key press would).
func (s *Session) Signal(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	return s.send(FrameSignal, []byte(signalName(sig)))
}

func signalName(sig syscall.Signal) string {
	for n, v := range signalNames() {
		if v == sig {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(sig))
}

// Wait copies the process's output to stdout and stderr (either may be
// nil) until it exits and returns its result. Call it once.
func (s *Session) Wait(stdout, stderr io.Writer) (ExecResult, error) {
	buf := make([]byte, 0, 32<<10)
	for {
		typ, payload, err := ReadFrame(s.r, buf)
		if err != nil {
			return ExecResult{}, errs.Wrap(errs.Unavailable, err, "session with sandbox agent broke")
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0]
		}
		var w io.Writer
		switch typ {
		case FrameStdout:
			w = stdout
		case FrameStderr:
			w = stderr
		case FrameExit:
			var res ExecResult
			if err := json.Unmarshal(payload, &res); err != nil {
				return ExecResult{}, errs.Wrap(errs.Unavailable, err, "malformed exit frame")
			}
			return res, nil
		case FrameError:
			var eb ErrorBody
			if err := json.Unmarshal(payload, &eb); err != nil {
				return ExecResult{}, errs.Wrap(errs.Unavailable, err, "malformed error frame")
			}
			return ExecResult{}, errs.New(errs.ClassFromCode(eb.Code), "%s", eb.Message)
		default:
			return ExecResult{}, errs.New(errs.Unavailable, "unknown session frame type %d", typ)
		}
		if w != nil {
			if _, err := w.Write(payload); err != nil {
				return ExecResult{}, fmt.Errorf("write session output: %w", err)
			}
		}
	}
}

// Close ends the session; the agent kills the process if it still runs.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}
