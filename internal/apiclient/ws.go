package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// ExecWSRequest is the first message of a WebSocket exec (API.md).
type ExecWSRequest struct {
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Mode    string            `json:"mode,omitempty"` // "shell" (default) or "argv"
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
	Timeout string            `json:"timeout,omitempty"` // none by default
	TTY     bool              `json:"tty,omitempty"`
	Cols    int               `json:"cols,omitempty"`
	Rows    int               `json:"rows,omitempty"`
	// Detached starts a background process and attaches to it: Close then
	// leaves it running. ProcessID attaches to an existing one instead,
	// from output offset Offset. The server's first message is then
	// {"stream":"process"} with the process id and the starting offset.
	Detached    bool   `json:"detached,omitempty"`
	OutputLimit int    `json:"output_limit,omitempty"`
	ProcessID   string `json:"process_id,omitempty"`
	Offset      int64  `json:"offset,omitempty"`
}

// ExecWSMessage is one server message: Stream is "stdout", "stderr",
// "exit" (ExitCode set), "error" (Code and Message set) or, first when
// attached to a background process, "process" (ProcessID, PID, Offset).
// Output of an attached process carries its raw byte Offset.
type ExecWSMessage struct {
	Stream    string `json:"stream"`
	Data      string `json:"data"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	TimedOut  bool   `json:"timed_out,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	ProcessID string `json:"process_id,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
}

// ExecWS is an interactive exec on a WebSocket. Recv must be called from
// one goroutine; the senders may be called from others at the same time.
// The process lives as long as the socket: Close kills it.
type ExecWS struct {
	conn *websocket.Conn
}

// maxServerMessage bounds one server message (output chunks are at most
// 32 KiB before JSON escaping).
const maxServerMessage = 4 << 20

// OpenExecWS dials GET /sandboxes/{id}/exec/ws and sends req. ctx bounds
// the handshake only; the session itself has no deadline.
func (c *Client) OpenExecWS(ctx context.Context, id string, req ExecWSRequest) (*ExecWS, error) {
	u := c.base + sandboxPath(id, "/exec/ws")
	h := http.Header{}
	if c.apiKey != "" {
		h.Set("X-API-Key", c.apiKey)
	}
	if c.adminKey != "" {
		h.Set("X-Admin-API-Key", c.adminKey)
	}
	if c.userID != "" {
		h.Set("X-User-ID", c.userID)
	}
	h.Set("User-Agent", c.userAgent)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, decodeError(resp)
		}
		return nil, fmt.Errorf("apiclient: open exec websocket: %w", err)
	}
	conn.SetReadLimit(maxServerMessage)
	x := &ExecWS{conn: conn}
	if err := x.send(ctx, req); err != nil {
		conn.CloseNow()
		return nil, err
	}
	return x, nil
}

func (x *ExecWS) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("apiclient: encode websocket message: %w", err)
	}
	if err := x.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("apiclient: websocket write: %w", err)
	}
	return nil
}

// Stdin sends bytes to the process (keys on a TTY) as a binary message, so
// any bytes pass unchanged.
func (x *ExecWS) Stdin(ctx context.Context, p []byte) error {
	if err := x.conn.Write(ctx, websocket.MessageBinary, p); err != nil {
		return fmt.Errorf("apiclient: websocket write: %w", err)
	}
	return nil
}

// Resize sets the terminal size.
func (x *ExecWS) Resize(ctx context.Context, cols, rows int) error {
	return x.send(ctx, map[string]any{"resize": map[string]int{"cols": cols, "rows": rows}})
}

// Signal sends a signal by name ("SIGINT").
func (x *ExecWS) Signal(ctx context.Context, name string) error {
	return x.send(ctx, map[string]string{"signal": name})
}

// CloseStdin ends the process's input (Ctrl-D on a TTY).
func (x *ExecWS) CloseStdin(ctx context.Context) error {
	return x.send(ctx, map[string]bool{"eof": true})
}

// Recv returns the next server message. After the "exit" message it
// returns io.EOF. An "error" message comes back as an *APIError (its
// Status is the close code minus 4000).
func (x *ExecWS) Recv(ctx context.Context) (ExecWSMessage, error) {
	_, data, err := x.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code == websocket.StatusNormalClosure {
				return ExecWSMessage{}, io.EOF
			}
			if ce.Code >= 4000 && ce.Code < 5000 {
				return ExecWSMessage{}, &APIError{Status: int(ce.Code) - 4000, Code: ce.Reason, Message: "websocket closed: " + ce.Reason}
			}
		}
		return ExecWSMessage{}, fmt.Errorf("apiclient: websocket read: %w", err)
	}
	var m ExecWSMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return ExecWSMessage{}, fmt.Errorf("apiclient: malformed websocket message %q: %w", truncate(data, 80), err)
	}
	if m.Stream == "error" {
		return m, &APIError{Code: m.Code, Message: m.Message}
	}
	return m, nil
}

// Run copies stdin (if non-nil) to the process and its output to stdout
// and stderr until it exits, and returns the exit code. On a TTY all output
// arrives on stdout.
func (x *ExecWS) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && x.Stdin(ctx, buf[:n]) != nil {
					return
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
						_ = x.CloseStdin(ctx)
					}
					return
				}
			}
		}()
	}
	for {
		m, err := x.Recv(ctx)
		if err != nil {
			return -1, err
		}
		switch m.Stream {
		case "stdout":
			if _, err := io.WriteString(stdout, m.Data); err != nil {
				return -1, err
			}
		case "stderr":
			if _, err := io.WriteString(stderr, m.Data); err != nil {
				return -1, err
			}
		case "exit":
			if m.ExitCode == nil {
				return -1, ErrNoExitStatus
			}
			return *m.ExitCode, nil
		}
	}
}

// Close closes the socket; the server kills the process if it still runs.
func (x *ExecWS) Close() error {
	return x.conn.Close(websocket.StatusNormalClosure, "")
}
