// Package agent holds the protocol between the host and stacyvm-agent, the
// process that runs inside every sandbox, plus the host-side Client and the
// in-sandbox Server.
//
// Transport: HTTP/1.1 over any stream connection (a unix socket bind-mounted
// into a container, a multiplexed stream over virtio-serial for VMs, TCP for
// remote workers). Every request is its own connection from a pool, so calls
// never wait on each other. Bulk bytes travel raw (file bodies) or in binary
// frames (exec output): no base64, no JSON for payloads.
//
// Endpoints (all under /v1):
//
//	GET    /v1/ping                          -> Info
//	POST   /v1/exec          ExecRequest     -> framed stream (see Frame*)
//	GET    /v1/files?path=                   -> raw bytes (file only)
//	PUT    /v1/files?path=&mode=0644         <- raw bytes; parents created; atomic replace
//	DELETE /v1/files?path=&recursive=true    -> 204
//	GET    /v1/files/list?path=              -> []FileInfo (sorted by name)
//	GET    /v1/files/stat?path=              -> FileInfo
//	GET    /v1/files/glob?pattern=           -> []string (sorted; never null; ** recurses)
//	POST   /v1/files/move    MoveRequest     -> 204
//	POST   /v1/files/chmod   ChmodRequest    -> 204
//	POST   /v1/session       ProcessSpec     -> 101 Upgrade: stacyvm-session, then frames both ways (server_session.go)
//	POST   /v1/processes     ProcessSpec     -> 201 ProcessInfo (a detached background process)
//	GET    /v1/processes                     -> []ProcessInfo
//	GET    /v1/processes/{id}                -> ProcessInfo
//	GET    /v1/processes/{id}/output?offset=&follow= -> framed stream (FrameOffset first)
//	POST   /v1/processes/{id}/stdin?eof=     <- raw bytes
//	POST   /v1/processes/{id}/signal SignalRequest -> 204
//	POST   /v1/processes/{id}/resize ResizeRequest -> 204
//	DELETE /v1/processes/{id}                -> ProcessInfo (killed)
//
// Errors are HTTP statuses with an ErrorBody whose Code is an errs class code,
// so classes survive the wire (Client maps them back).
package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// ProtocolVersion is bumped on incompatible changes; Info carries it.
const ProtocolVersion = 1

// Info answers /v1/ping.
type Info struct {
	Version         string `json:"version"`
	ProtocolVersion int    `json:"protocol_version"`
	PID             int    `json:"pid"`
	Root            string `json:"root"` // "/" in real sandboxes; a directory for the mock provider
}

// ExecRequest starts one process. Argv is final: shell mode is resolved by
// the caller into ["/bin/sh", "-c", script]; the agent never adds a shell.
type ExecRequest struct {
	Argv    []string          `json:"argv"`
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"` // absolute; "" = the sandbox default
	// TimeoutMS bounds the run; 0 = no limit beyond the request's lifetime.
	// On expiry the whole process group is killed and the exit frame says TimedOut.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// ExecResult is the payload of the final exit frame.
type ExecResult struct {
	ExitCode   int   `json:"exit_code"`
	TimedOut   bool  `json:"timed_out,omitempty"`
	DurationNS int64 `json:"duration_ns"`
}

// Duration returns the run time.
func (r ExecResult) Duration() time.Duration { return time.Duration(r.DurationNS) }

// FileInfo is the same on every provider (API.md): absolute path, octal
// permission digits without type bits ("644"), RFC 3339 modification time.
type FileInfo struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	IsDir   bool      `json:"is_dir"`
	ModTime time.Time `json:"mod_time"`
}

// MoveRequest renames OldPath to NewPath, creating NewPath's parents.
type MoveRequest struct {
	OldPath string `json:"old_path"`
	NewPath string `json:"new_path"`
}

// ChmodRequest sets the permission bits of Path; Mode is octal ("0600", "755").
type ChmodRequest struct {
	Path string `json:"path"`
	Mode string `json:"mode"`
}

// ErrorBody is the JSON body of every non-2xx agent response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Frame types of the exec stream. A frame is: 1 byte type, 4 bytes big-endian
// payload length, payload. Stdout/stderr payloads are raw bytes in the order
// the process wrote them per stream. The stream ends with exactly one
// FrameExit (JSON ExecResult) or one FrameError (JSON ErrorBody).
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameExit   byte = 3
	FrameError  byte = 4
)

// MaxFrame is the largest payload a frame may carry.
const MaxFrame = 1 << 20

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("agent: frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ErrFrameTooLarge is returned by ReadFrame for a length over MaxFrame.
var ErrFrameTooLarge = errors.New("agent: frame too large")

// ReadFrame reads one frame into buf (grown as needed) and returns the type
// and payload, which aliases buf. io.EOF means a clean end before a header.
func ReadFrame(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, ErrFrameTooLarge
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err = io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// Frames of interactive sessions and process output (server_session.go,
// server_proc.go). The host sends FrameStdin (raw bytes), FrameStdinEOF (no
// payload), FrameResize (cols and rows, two big-endian uint16 each) and
// FrameSignal (a signal name such as "SIGINT"); the agent sends stdout,
// stderr and one final exit or error frame. A process output stream starts
// with FrameOffset (8-byte big-endian output offset of the next byte) and
// repeats it wherever bytes were dropped from the ring in between.
const (
	FrameStdin    byte = 5
	FrameStdinEOF byte = 6
	FrameResize   byte = 7
	FrameSignal   byte = 8
	FrameOffset   byte = 9
)

// SessionProtocol is the Upgrade token of an interactive session.
const SessionProtocol = "stacyvm-session"

// HeaderPID carries the OS pid of a session's process in the 101 answer.
const HeaderPID = "X-Stacyvm-Pid"

// ProcessSpec starts an interactive session or a background process.
type ProcessSpec struct {
	ExecRequest
	// TTY runs the process on a pseudo-terminal (stdout and stderr merge
	// into stdout); Cols and Rows size it (80x24 when zero).
	TTY  bool   `json:"tty,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	// Stdin keeps a background process's stdin open for later writes;
	// without it stdin is /dev/null. Sessions and TTYs always have stdin.
	Stdin bool `json:"stdin,omitempty"`
	// OutputLimit is the size of a background process's output ring in
	// bytes; 0 = the agent default (DefaultOutputLimit).
	OutputLimit int `json:"output_limit,omitempty"`
}

// DefaultOutputLimit and MaxOutputLimit bound a background process's ring.
const (
	DefaultOutputLimit = 1 << 20
	MaxOutputLimit     = 64 << 20
)

// ProcessInfo describes a background process. OutputStart is the offset of
// the oldest output byte still kept, OutputEnd the total bytes written.
type ProcessInfo struct {
	ID          string     `json:"id"`
	PID         int        `json:"pid"`
	Argv        []string   `json:"argv"`
	TTY         bool       `json:"tty"`
	Stdin       bool       `json:"stdin"`
	Running     bool       `json:"running"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	TimedOut    bool       `json:"timed_out,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	ExitedAt    *time.Time `json:"exited_at,omitempty"`
	OutputStart int64      `json:"output_start"`
	OutputEnd   int64      `json:"output_end"`
	OutputLimit int        `json:"output_limit"`
}

// SignalRequest sends a signal ("SIGTERM", "TERM", "15") to a process.
type SignalRequest struct {
	Signal string `json:"signal"`
}

// ResizeRequest sets a terminal's size.
type ResizeRequest struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}
