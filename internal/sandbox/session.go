package sandbox

import (
	"context"
	"io"
	"sync"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Session is an interactive process tied to its caller: Close (or the
// caller going away) kills it and everything it started. Stdin, CloseStdin,
// Resize and Signal may be called while Wait runs.
type Session struct {
	t    *target
	as   *agent.Session
	done func(res ExecResult, err error)
	once sync.Once
}

// OpenSession starts req's process in sandbox id with stdin attached (and a
// terminal when req.TTY). ctx bounds the start only; the session lasts until
// the process exits or Close.
func (s *Service) OpenSession(ctx context.Context, id string, req ProcessRequest) (*Session, error) {
	t, err := s.reach(ctx, id)
	if err != nil {
		return nil, err
	}
	spec, err := s.processSpec(ctx, t.rec.OwnerID, req)
	if err != nil {
		return nil, err
	}
	spec.Env = mergeEnv(t.rec.Env, spec.Env)
	spec.Stdin, spec.OutputLimit = true, 0
	started := s.now()
	s.execStarted(t.rec, req.Mode)
	as, err := t.agent.OpenSession(ctx, spec)
	if err != nil {
		err = s.runtimeFailed(ctx, t, err)
		s.execFinished(t.rec, req.Mode, ExecResult{}, err, started)
		return nil, err
	}
	sess := &Session{t: t, as: as}
	sess.done = func(res ExecResult, err error) { s.execFinished(t.rec, req.Mode, res, err, started) }
	return sess, nil
}

// PID is the process's pid inside the sandbox.
func (x *Session) PID() int { return x.as.PID }

// Wait copies output to stdout and stderr until the process exits (a TTY
// session writes everything to stdout). A timeout is reported in the
// result, not as an error.
func (x *Session) Wait(stdout, stderr io.Writer) (ExecResult, error) {
	res, err := x.as.Wait(stdout, stderr)
	out := ExecResult{ExitCode: res.ExitCode, TimedOut: res.TimedOut, Duration: res.Duration()}
	if err != nil {
		out = ExecResult{}
		err = errs.Wrap(errs.Unavailable, err, "interactive session with sandbox %s ended without an exit status", x.t.rec.ID)
	}
	x.once.Do(func() { x.done(out, err) })
	return out, err
}

// Stdin sends p to the process (typed keys on a TTY).
func (x *Session) Stdin(p []byte) error { return x.as.Stdin(p) }

// CloseStdin ends the process's input (Ctrl-D on a TTY).
func (x *Session) CloseStdin() error { return x.as.CloseStdin() }

// Resize sets the terminal size.
func (x *Session) Resize(cols, rows int) error {
	if err := checkTermSize(cols, rows, false); err != nil {
		return err
	}
	return x.as.Resize(uint16(cols), uint16(rows))
}

// Signal delivers a signal by name to the foreground process group.
func (x *Session) Signal(name string) error { return x.as.Signal(name) }

// Close ends the session, killing the process if it still runs.
func (x *Session) Close() error { return x.as.Close() }

// OpenSession records the command line of an interactive session.
func (a *Audited) OpenSession(ctx context.Context, id string, req ProcessRequest) (*Session, error) {
	sess, err := a.Service.OpenSession(ctx, id, req)
	a.record(ctx, "sandbox.exec_session", id, "", commandDetail(req, nil), err)
	return sess, err
}
