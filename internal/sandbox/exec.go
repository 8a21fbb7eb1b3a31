package sandbox

import (
	"context"
	"io"
	"path"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Exec runs a command in a sandbox and streams its output to stdout and
// stderr. Shell mode runs `/bin/sh -c` with the args single-quoted and
// appended; argv mode executes Command with Args directly, never through a
// shell. A timeout kills the command's whole process group and is reported
// in the result (TimedOut), not as an error. Cancelling ctx (the client went
// away) kills it too.
func (s *Service) Exec(ctx context.Context, id string, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	areq, err := s.execRequest(req)
	if err != nil {
		return ExecResult{}, err
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return ExecResult{}, err
	}
	if err := s.capOwnerExecTimeout(ctx, t.rec.OwnerID, req.Timeout, &areq); err != nil {
		return ExecResult{}, err
	}
	areq.Env = mergeEnv(t.rec.Env, areq.Env)
	start := s.now()
	s.execStarted(t.rec, req.Mode) // events.go
	res, err := t.agent.Exec(ctx, areq, stdout, stderr)
	if err != nil {
		err = s.runtimeFailed(ctx, t, err)
		s.execFinished(t.rec, req.Mode, ExecResult{}, err, start)
		return ExecResult{}, err
	}
	out := ExecResult{ExitCode: res.ExitCode, TimedOut: res.TimedOut, Duration: res.Duration()}
	if out.TimedOut {
		out.ExitCode = -1
	}
	s.execFinished(t.rec, req.Mode, out, nil, start)
	return out, nil
}

func (s *Service) execRequest(req ExecRequest) (agent.ExecRequest, error) {
	var argv []string
	switch req.Mode {
	case "", ModeShell:
		if strings.TrimSpace(req.Command) == "" {
			return agent.ExecRequest{}, errs.New(errs.Invalid, "command is required")
		}
		script := req.Command
		for _, a := range req.Args {
			script += " " + shellQuote(a)
		}
		argv = []string{"/bin/sh", "-c", script}
	case ModeArgv:
		if req.Command == "" {
			return agent.ExecRequest{}, errs.New(errs.Invalid, "argv mode needs a command")
		}
		argv = append([]string{req.Command}, req.Args...)
	default:
		return agent.ExecRequest{}, errs.New(errs.Invalid, "mode must be %q or %q", ModeShell, ModeArgv)
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return agent.ExecRequest{}, errs.New(errs.Invalid, "command and args must not contain NUL bytes")
		}
	}
	timeout := req.Timeout
	switch {
	case timeout < 0:
		return agent.ExecRequest{}, errs.New(errs.Invalid, "timeout must not be negative")
	case timeout == 0:
		timeout = s.d.DefaultExecTimeout
	case s.d.MaxExecTimeout > 0 && timeout > s.d.MaxExecTimeout:
		return agent.ExecRequest{}, errs.New(errs.Limit, "timeout %s exceeds the maximum of %s", timeout, s.d.MaxExecTimeout)
	}
	for k, v := range req.Env {
		if err := validEnvKey(k); err != nil {
			return agent.ExecRequest{}, err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return agent.ExecRequest{}, errs.New(errs.Invalid, "environment variable %s contains a NUL byte", k)
		}
	}
	wd := ""
	if req.Workdir != "" {
		wd = cleanPath(req.Workdir)
	}
	return agent.ExecRequest{Argv: argv, Env: req.Env, Workdir: wd, TimeoutMS: timeout.Milliseconds()}, nil
}

// mergeEnv overlays the exec's env on the sandbox's own (from create, or
// from the claim of a warm sandbox whose runtime started without it).
func mergeEnv(base, over map[string]string) map[string]string {
	if len(base) == 0 {
		return over
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// shellQuote quotes s for POSIX sh so it stays one literal word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// defaultWorkdir is where relative paths and commands start inside a sandbox.
const defaultWorkdir = "/workspace"

// cleanPath turns a caller's path into an absolute path inside the sandbox.
// Relative paths are relative to /workspace; ".." cannot climb above "/".
// Paths are only ever interpreted inside the sandbox, never on the host.
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = defaultWorkdir + "/" + p
	}
	return path.Clean(p)
}
