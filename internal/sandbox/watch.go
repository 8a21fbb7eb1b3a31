package sandbox

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// WatchFiles streams create/modify/delete events under path of a sandbox to
// fn (recursively for a directory unless recursive is false), starting with
// a "ready" event. It returns when ctx ends, fn fails, the watched path is
// deleted or the sandbox goes away.
func (s *Service) WatchFiles(ctx context.Context, id, path string, recursive bool, fn func(agent.WatchEvent) error) error {
	return s.fileOp(ctx, id, path, func(c *agent.Client, p string) error {
		return c.Watch(ctx, p, recursive, fn)
	})
}
