package sandbox

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func checkPath(p string) (string, error) {
	if p == "" {
		return "", errs.New(errs.Invalid, "path is required")
	}
	if strings.IndexByte(p, 0) >= 0 || len(p) > 4096 {
		return "", errs.New(errs.Invalid, "path is invalid")
	}
	return cleanPath(p), nil
}

// fileOp resolves the sandbox and path, then runs op against the agent.
func (s *Service) fileOp(ctx context.Context, id, p string, op func(c *agent.Client, p string) error) error {
	p, err := checkPath(p)
	if err != nil {
		return err
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return err
	}
	if err := op(t.agent, p); err != nil {
		return s.runtimeFailed(ctx, t, err)
	}
	return nil
}

// ReadFile streams a file out of a sandbox; the caller closes it.
func (s *Service) ReadFile(ctx context.Context, id, p string) (io.ReadCloser, int64, error) {
	var rc io.ReadCloser
	var size int64
	err := s.fileOp(ctx, id, p, func(c *agent.Client, p string) (err error) {
		rc, size, err = c.ReadFile(ctx, p)
		return err
	})
	return rc, size, err
}

// WriteFile streams body into a file (parents created) with mode.
func (s *Service) WriteFile(ctx context.Context, id, p string, mode uint32, body io.Reader, size int64) error {
	if mode == 0 {
		mode = 0o644
	}
	if mode > 0o7777 {
		return errs.New(errs.Invalid, "mode %o is not a permission mode", mode)
	}
	if size >= 0 && size < hostWriteMin {
		return s.fileOp(ctx, id, p, func(c *agent.Client, p string) error {
			return c.WriteFile(ctx, p, mode, body, size)
		})
	}
	p, err := checkPath(p)
	if err != nil {
		return err
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return err
	}
	if err := writeViaHost(ctx, t, p, mode, body); err != errHostDeclined {
		s.log.Debug("upload", "sandbox_id", id, "path", p, "via", "host", "err", err)
		return err
	}
	s.log.Debug("upload", "sandbox_id", id, "path", p, "via", "agent")
	if err := t.agent.WriteFile(ctx, p, mode, body, size); err != nil {
		return s.runtimeFailed(ctx, t, err)
	}
	return nil
}

// DeleteFile removes a file, or a directory tree when recursive.
func (s *Service) DeleteFile(ctx context.Context, id, p string, recursive bool) error {
	return s.fileOp(ctx, id, p, func(c *agent.Client, p string) error {
		if p == "/" {
			return errs.New(errs.Invalid, "refusing to delete /")
		}
		return c.Delete(ctx, p, recursive)
	})
}

// ListFiles lists a directory.
func (s *Service) ListFiles(ctx context.Context, id, p string) ([]agent.FileInfo, error) {
	if p == "" {
		p = "/"
	}
	var out []agent.FileInfo
	err := s.fileOp(ctx, id, p, func(c *agent.Client, p string) (err error) {
		out, err = c.List(ctx, p)
		return err
	})
	if out == nil && err == nil {
		out = []agent.FileInfo{}
	}
	return out, err
}

// StatFile describes one path.
func (s *Service) StatFile(ctx context.Context, id, p string) (agent.FileInfo, error) {
	var fi agent.FileInfo
	err := s.fileOp(ctx, id, p, func(c *agent.Client, p string) (err error) {
		fi, err = c.Stat(ctx, p)
		return err
	})
	return fi, err
}

// Glob returns absolute paths matching pattern ("**" recurses); never nil.
func (s *Service) Glob(ctx context.Context, id, pattern string) ([]string, error) {
	if pattern == "" {
		return nil, errs.New(errs.Invalid, "pattern is required")
	}
	if !strings.HasPrefix(pattern, "/") {
		pattern = defaultWorkdir + "/" + pattern
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return nil, err
	}
	out, err := t.agent.Glob(ctx, pattern)
	if err != nil {
		return nil, s.runtimeFailed(ctx, t, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// MoveFile renames a path inside a sandbox.
func (s *Service) MoveFile(ctx context.Context, id, oldPath, newPath string) error {
	np, err := checkPath(newPath)
	if err != nil {
		return err
	}
	return s.fileOp(ctx, id, oldPath, func(c *agent.Client, op string) error {
		return c.Move(ctx, op, np)
	})
}

// ChmodFile sets permission bits from an octal string ("0600", "755").
func (s *Service) ChmodFile(ctx context.Context, id, p, mode string) error {
	if _, err := ParseMode(mode); err != nil {
		return err
	}
	return s.fileOp(ctx, id, p, func(c *agent.Client, p string) error {
		return c.Chmod(ctx, p, mode)
	})
}

// ParseMode parses an octal permission string such as "0644" or "755".
func ParseMode(mode string) (uint32, error) {
	if mode == "" || len(mode) > 5 {
		return 0, errs.New(errs.Invalid, "mode %q is not an octal permission mode", printable(mode))
	}
	v, err := strconv.ParseUint(mode, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, errs.New(errs.Invalid, "mode %q is not an octal permission mode", printable(mode))
	}
	return uint32(v), nil
}
