// Package hostproc holds the plumbing shared by the providers whose
// sandbox agent (or VMM) is a plain host process: /proc parsing, killing a
// session, reaping a started process and waiting for its agent's first
// answer, a cache of agent clients, the console log, and the JSON state
// file kept next to each sandbox.
package hostproc

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Stat is what the providers read from /proc/<pid>/stat.
type Stat struct {
	State   string // one letter: R, S, Z, ...
	Session int
}

// ProcStat parses /proc/<pid>/stat (fields after the parenthesised comm).
func ProcStat(pid int) (Stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return Stat{}, false
	}
	sid, _ := strconv.Atoi(f[3])
	return Stat{State: f[0], Session: sid}, true
}

// AgentArgs returns the command line of pid when it is a live (not zombie)
// process whose argv[0] is agentPath; callers then check the arguments
// that tie it to one sandbox, so a reused pid is never mistaken for it.
func AgentArgs(pid int, agentPath string) ([]string, bool) {
	if s, ok := ProcStat(pid); !ok || s.State == "Z" {
		return nil, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) == 0 || args[0] != agentPath {
		return nil, false
	}
	return args, true
}

// KillSession SIGKILLs the session leader sid and every process in its
// session (exec'd commands run in their own process groups, same session).
func KillSession(sid int) {
	if sid <= 1 {
		return
	}
	syscall.Kill(-sid, syscall.SIGKILL)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := ProcStat(pid); ok && s.Session == sid {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// WaitGone waits (bounded) until pid has exited or is a zombie.
func WaitGone(ctx context.Context, pid int) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s, ok := ProcStat(pid); !ok || s.State == "Z" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Proc is a process a provider instance started and reaps.
type Proc struct {
	PID  int
	Done chan struct{} // closed once reaped
	Code int           // exit code; valid after Done
}

// Reap returns the Proc of the started cmd and waits for it in a goroutine
// owned by the Proc: it ends when the process does.
func Reap(cmd *exec.Cmd) *Proc {
	pr := &Proc{PID: cmd.Process.Pid, Done: make(chan struct{})}
	go func() {
		cmd.Wait()
		pr.Code = cmd.ProcessState.ExitCode()
		close(pr.Done)
	}()
	return pr
}

// ExitCode is pr's exit code once it has been reaped, else -1 (also for a
// nil pr: a process this instance did not start).
func (pr *Proc) ExitCode() int {
	if pr == nil {
		return -1
	}
	select {
	case <-pr.Done:
		return pr.Code
	default:
		return -1
	}
}

// ReadyTimeout bounds the wait for an agent's first answer.
const ReadyTimeout = 30 * time.Second

// WaitReady pings ac until it answers, pr exits (the error quotes the
// last lines of console) or ReadyTimeout passes. what names the agent in
// errors ("mock agent").
func WaitReady(ctx context.Context, ac *agent.Client, pr *Proc, console, what string) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := ac.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-pr.Done:
			t.Stop()
			lines, _ := TailFile(console, 20)
			return errs.New(errs.Internal, "%s exited during start (exit code %d): %s", what, pr.Code, strings.Join(lines, " | "))
		case <-ctx.Done():
			t.Stop()
			return errs.Wrap(errs.Timeout, err, "%s did not answer in time", what)
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// ConsoleLog is the name of the agent's own log in a sandbox directory.
const ConsoleLog = "console.log"

// OpenConsole opens (appending) the console log in dir.
func OpenConsole(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ConsoleLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "open console log")
	}
	return f, nil
}
