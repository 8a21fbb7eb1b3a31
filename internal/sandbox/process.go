package sandbox

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Background processes and interactive sessions run in the sandbox's agent,
// so every provider has them. Unlike Exec, they get no default timeout: a
// dev server or a one-hour build must not be cut. A timeout the caller asks
// for is honoured, and an owner quota's max exec timeout still caps them.

// ProcessRequest starts a background process or an interactive session.
type ProcessRequest struct {
	Command string
	Args    []string
	Mode    string // ModeShell (default) or ModeArgv
	Env     map[string]string
	Workdir string
	Timeout time.Duration // 0 = none; negative is Invalid
	// TTY runs the process on a pseudo-terminal of Cols x Rows (80x24 if 0).
	TTY  bool
	Cols int
	Rows int
	// Stdin keeps a background process's stdin open for later writes.
	Stdin bool
	// OutputLimit is the background process's output ring in bytes (0 = the
	// agent default, 1 MiB).
	OutputLimit int
}

// maxTermSize bounds terminal dimensions (the kernel takes 16-bit values).
const maxTermSize = 10000

// processSpec validates req and resolves it for the agent.
func (s *Service) processSpec(ctx context.Context, owner string, req ProcessRequest) (agent.ProcessSpec, error) {
	if req.Timeout < 0 {
		return agent.ProcessSpec{}, errs.New(errs.Invalid, "timeout must not be negative")
	}
	areq, err := s.execRequest(ExecRequest{Command: req.Command, Args: req.Args, Mode: req.Mode, Env: req.Env, Workdir: req.Workdir})
	if err != nil {
		return agent.ProcessSpec{}, err
	}
	areq.TimeoutMS = req.Timeout.Milliseconds()
	if req.Timeout > 0 && areq.TimeoutMS == 0 {
		areq.TimeoutMS = 1
	}
	if err := s.capOwnerExecTimeout(ctx, owner, req.Timeout, &areq); err != nil {
		return agent.ProcessSpec{}, err
	}
	if err := checkTermSize(req.Cols, req.Rows, true); err != nil {
		return agent.ProcessSpec{}, err
	}
	if req.OutputLimit < 0 || req.OutputLimit > agent.MaxOutputLimit {
		return agent.ProcessSpec{}, errs.New(errs.Invalid, "output_limit must be between 0 and %d bytes", agent.MaxOutputLimit)
	}
	return agent.ProcessSpec{ExecRequest: areq, TTY: req.TTY, Cols: uint16(req.Cols), Rows: uint16(req.Rows),
		Stdin: req.Stdin, OutputLimit: req.OutputLimit}, nil
}

func checkTermSize(cols, rows int, zeroOK bool) error {
	lo := 1
	if zeroOK {
		lo = 0
	}
	if cols < lo || rows < lo || cols > maxTermSize || rows > maxTermSize {
		return errs.New(errs.Invalid, "terminal size %dx%d: cols and rows must be between 1 and %d", cols, rows, maxTermSize)
	}
	return nil
}

// checkProcessID rejects ids that cannot name a process (so junk never
// reaches the agent's URL).
func checkProcessID(pid string) error {
	if pid == "" || len(pid) > 64 || strings.ContainsAny(pid, "/?#%\\ \t\r\n\x00") {
		return errs.New(errs.NotFound, "process %q not found", printable(pid))
	}
	return nil
}

// procOp resolves the sandbox and runs op against its agent.
func (s *Service) procOp(ctx context.Context, id, pid string, op func(c *agent.Client) error) error {
	if err := checkProcessID(pid); err != nil {
		return err
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return err
	}
	if err := op(t.agent); err != nil {
		return s.runtimeFailed(ctx, t, err)
	}
	return nil
}

// StartProcess starts a detached background process. It keeps running
// after the call, whoever reads its output, until it exits, is killed, or
// the sandbox is destroyed.
func (s *Service) StartProcess(ctx context.Context, id string, req ProcessRequest) (agent.ProcessInfo, error) {
	t, err := s.reach(ctx, id)
	if err != nil {
		return agent.ProcessInfo{}, err
	}
	spec, err := s.processSpec(ctx, t.rec.OwnerID, req)
	if err != nil {
		return agent.ProcessInfo{}, err
	}
	spec.Env = mergeEnv(t.rec.Env, spec.Env)
	info, err := t.agent.StartProcess(ctx, spec)
	if err != nil {
		return agent.ProcessInfo{}, s.runtimeFailed(ctx, t, err)
	}
	s.log.Info("process started", "sandbox_id", id, "process_id", info.ID, "tty", spec.TTY)
	return info, nil
}

// ListProcesses lists a sandbox's background processes, oldest first
// (exited ones are kept for a while with their exit code and output).
func (s *Service) ListProcesses(ctx context.Context, id string) ([]agent.ProcessInfo, error) {
	t, err := s.reach(ctx, id)
	if err != nil {
		return nil, err
	}
	out, err := t.agent.Processes(ctx)
	if err != nil {
		return nil, s.runtimeFailed(ctx, t, err)
	}
	return out, nil
}

// GetProcess describes one background process (NotFound for unknown ids).
func (s *Service) GetProcess(ctx context.Context, id, pid string) (agent.ProcessInfo, error) {
	var out agent.ProcessInfo
	err := s.procOp(ctx, id, pid, func(c *agent.Client) (err error) {
		out, err = c.Process(ctx, pid)
		return err
	})
	return out, err
}

// ProcessOutput calls fn with the process's output from offset (from the
// oldest byte still kept when offset was dropped). With follow it waits for
// more output until the process exits or ctx ends; there is no other
// deadline. The result is non-nil once the process exited and all of its
// output was delivered.
func (s *Service) ProcessOutput(ctx context.Context, id, pid string, offset int64, follow bool, fn func(agent.OutputChunk) error) (*agent.ExecResult, error) {
	if offset < 0 {
		return nil, errs.New(errs.Invalid, "offset must not be negative")
	}
	var res *agent.ExecResult
	err := s.procOp(ctx, id, pid, func(c *agent.Client) (err error) {
		res, err = c.ProcessOutput(ctx, pid, offset, follow, fn)
		return err
	})
	return res, err
}

// ProcessStdin writes data to the process's stdin, then closes it if eof.
func (s *Service) ProcessStdin(ctx context.Context, id, pid string, data io.Reader, size int64, eof bool) error {
	return s.procOp(ctx, id, pid, func(c *agent.Client) error {
		return c.ProcessStdin(ctx, pid, data, size, eof)
	})
}

// SignalProcess sends a signal ("SIGTERM") to the process's group.
func (s *Service) SignalProcess(ctx context.Context, id, pid, signal string) error {
	if _, err := agent.ParseSignal(signal); err != nil {
		return err
	}
	return s.procOp(ctx, id, pid, func(c *agent.Client) error {
		return c.SignalProcess(ctx, pid, signal)
	})
}

// ResizeProcess resizes a TTY process's terminal.
func (s *Service) ResizeProcess(ctx context.Context, id, pid string, cols, rows int) error {
	if err := checkTermSize(cols, rows, false); err != nil {
		return err
	}
	return s.procOp(ctx, id, pid, func(c *agent.Client) error {
		return c.ResizeProcess(ctx, pid, uint16(cols), uint16(rows))
	})
}

// KillProcess kills the process and everything it started, and returns its
// final state.
func (s *Service) KillProcess(ctx context.Context, id, pid string) (agent.ProcessInfo, error) {
	var out agent.ProcessInfo
	err := s.procOp(ctx, id, pid, func(c *agent.Client) (err error) {
		out, err = c.KillProcess(ctx, pid)
		return err
	})
	return out, err
}

// StartProcess records the command line of a background process. (Stdin
// writes are not audited: a terminal attached to a process sends one per
// keystroke, and their contents are never recorded anyway.)
func (a *Audited) StartProcess(ctx context.Context, id string, req ProcessRequest) (agent.ProcessInfo, error) {
	info, err := a.Service.StartProcess(ctx, id, req)
	a.record(ctx, "process.start", id, "", commandDetail(req, map[string]any{"process_id": info.ID}), err)
	return info, err
}

// SignalProcess records the signal.
func (a *Audited) SignalProcess(ctx context.Context, id, pid, signal string) error {
	err := a.Service.SignalProcess(ctx, id, pid, signal)
	a.record(ctx, "process.signal", id, "", map[string]any{"process_id": pid, "signal": signal}, err)
	return err
}

// KillProcess records the kill.
func (a *Audited) KillProcess(ctx context.Context, id, pid string) (agent.ProcessInfo, error) {
	info, err := a.Service.KillProcess(ctx, id, pid)
	a.record(ctx, "process.kill", id, "", map[string]any{"process_id": pid}, err)
	return info, err
}

// commandDetail is the audit detail of a command line (never env values).
func commandDetail(req ProcessRequest, extra map[string]any) map[string]any {
	d := map[string]any{"command": req.Command, "tty": req.TTY}
	if len(req.Args) > 0 {
		d["args"] = req.Args
	}
	if req.Mode != "" {
		d["mode"] = req.Mode
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}
