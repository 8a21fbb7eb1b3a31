package sandbox

import (
	"context"
	"io"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// ReadArchive streams directory dir of a sandbox as a tar archive (gzip
// when gz); the caller closes it.
func (s *Service) ReadArchive(ctx context.Context, id, dir string, gz bool) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := s.fileOp(ctx, id, dir, func(c *agent.Client, p string) (err error) {
		rc, err = c.ReadArchive(ctx, p, gz)
		return err
	})
	return rc, err
}

// WriteArchive extracts a tar stream (gzip when gz) under directory dir of
// a sandbox, creating dir when missing. Entries escaping dir are refused.
func (s *Service) WriteArchive(ctx context.Context, id, dir string, body io.Reader, gz bool) (agent.ArchiveResult, error) {
	var res agent.ArchiveResult
	err := s.fileOp(ctx, id, dir, func(c *agent.Client, p string) (err error) {
		res, err = c.WriteArchive(ctx, p, body, gz)
		return err
	})
	return res, err
}
