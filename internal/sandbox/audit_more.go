package sandbox

import (
	"context"
	"io"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// Audit of archive transfers: the directory only, never the contents.
// (Sessions and processes are audited next to their use cases.)

// ReadArchive records an archive download (the directory only).
func (a *Audited) ReadArchive(ctx context.Context, id, dir string, gz bool) (io.ReadCloser, error) {
	rc, err := a.Service.ReadArchive(ctx, id, dir, gz)
	a.record(ctx, "file.archive_read", id, "", map[string]any{"path": dir}, err)
	return rc, err
}

// WriteArchive records an archive upload (the directory only).
func (a *Audited) WriteArchive(ctx context.Context, id, dir string, body io.Reader, gz bool) (agent.ArchiveResult, error) {
	res, err := a.Service.WriteArchive(ctx, id, dir, body, gz)
	a.record(ctx, "file.archive_write", id, "", map[string]any{"path": dir}, err)
	return res, err
}
