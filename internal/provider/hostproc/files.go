package hostproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// tailWindow is how much of the end of a log file is read.
const tailWindow = 1 << 20

func readTail(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tailWindow {
		f.Seek(fi.Size()-tailWindow, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "read console log")
	}
	return b, nil
}

func lastLines(b []byte, n int) []string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{}
	}
	all := strings.Split(string(b), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// TailFile returns up to n last lines of the file at path (an error
// matching os.ErrNotExist when it is missing).
func TailFile(path string, n int) ([]string, error) {
	b, err := readTail(path)
	if err != nil {
		return nil, err
	}
	return lastLines(b, n), nil
}

// TailLines returns up to n last lines of a file (nil when unreadable),
// with carriage returns (serial consoles) removed.
func TailLines(path string, n int) []string {
	b, err := readTail(path)
	if err != nil {
		return nil
	}
	return lastLines(bytes.ReplaceAll(b, []byte("\r"), nil), n)
}

// Logs returns the last lines (100 when lines <= 0) of the console log in
// dir, the directory of sandbox id; NotFound when there is none.
func Logs(dir, id string, lines int) ([]string, error) {
	if lines <= 0 {
		lines = 100
	}
	out, err := TailFile(filepath.Join(dir, ConsoleLog), lines)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.New(errs.NotFound, "sandbox %s has no console log", id)
	}
	return out, err
}

// ReadState decodes the JSON state file at path into v. A read error is
// returned as is (os.ErrNotExist for a missing sandbox); undecodable JSON
// is Internal "corrupt <what>".
func ReadState(path string, v any, what string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errs.Wrap(errs.Internal, err, "corrupt %s", what)
	}
	return nil
}

// WriteState replaces the JSON state file at path with v atomically
// (written beside it, then renamed).
func WriteState(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// MkdirSandbox creates the directory of a new sandbox id: Conflict when
// it exists already.
func MkdirSandbox(dir, id string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errs.New(errs.Conflict, "sandbox %s already exists", id)
		}
		return errs.Wrap(errs.Internal, err, "create sandbox dir")
	}
	return nil
}

// Inspect is the status of a sandbox whose state file was read with
// readErr: Missing when there is no state file, Running when alive says
// so, else Stopped with pr's exit code (-1 when not known here) and the
// detail gone returns.
func Inspect(readErr error, startedAt time.Time, alive func() bool, pr *Proc, gone func() string) (provider.Status, error) {
	if errors.Is(readErr, os.ErrNotExist) {
		return provider.Status{State: provider.RuntimeMissing}, nil
	}
	if readErr != nil {
		return provider.Status{}, readErr
	}
	if alive() {
		return provider.Status{State: provider.RuntimeRunning, StartedAt: startedAt}, nil
	}
	return provider.Status{State: provider.RuntimeStopped, StartedAt: startedAt, ExitCode: pr.ExitCode(), Detail: gone()}, nil
}

// Owned is a sandbox's persisted state: it names the server that owns it
// and its own sandbox id.
type Owned interface {
	Owner() (serverID, sandboxID string)
}

// List returns the handles of the sandbox directories under dir whose
// names pass valid and whose state, as read reads it, names serverID and
// the directory's id: one being created, corrupt, or another server's is
// left out. what names the provider in errors.
func List[S Owned](dir, what, serverID string, valid func(string) error, read func(id string) (S, error), handle func(S) provider.Handle) ([]provider.Handle, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "read %s data dir", what)
	}
	out := []provider.Handle{}
	for _, e := range ents {
		if !e.IsDir() || valid(e.Name()) != nil {
			continue
		}
		st, err := read(e.Name())
		if err != nil {
			continue
		}
		if server, id := st.Owner(); server != serverID || id != e.Name() {
			continue
		}
		out = append(out, handle(st))
	}
	return out, nil
}

// Limited keeps the first N bytes written to it (into W) and drops the
// rest; for bounding a command's captured stderr.
type Limited struct {
	W io.Writer
	N int
}

func (l *Limited) Write(b []byte) (int, error) {
	if l.N > 0 {
		k := min(len(b), l.N)
		l.W.Write(b[:k])
		l.N -= k
	}
	return len(b), nil
}
