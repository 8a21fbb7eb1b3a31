package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// ReadArchive streams directory dir as a tar archive (gzip-compressed when
// gz is set). The caller closes the reader. An error met after the stream
// started surfaces as a read error, never as a clean end.
func (c *Client) ReadArchive(ctx context.Context, dir string, gz bool) (io.ReadCloser, error) {
	q := url.Values{"path": {dir}}
	if gz {
		q.Set("gzip", "true")
	}
	resp, err := c.doWith(c.bulk, ctx, http.MethodGet, "/files/archive", q, nil, -1, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// WriteArchive extracts the tar stream body (gzip-compressed when gz is set)
// under directory dir, creating it when missing. Entries that would escape
// dir (absolute names, "..", paths through symlinks) fail the call.
func (c *Client) WriteArchive(ctx context.Context, dir string, body io.Reader, gz bool) (ArchiveResult, error) {
	q := url.Values{"path": {dir}}
	if gz {
		q.Set("gzip", "true")
	}
	var res ArchiveResult
	resp, err := c.doWith(c.bulk, ctx, http.MethodPut, "/files/archive", q, body, -1, "application/x-tar")
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&res); err != nil {
		return res, errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed answer")
	}
	return res, nil
}
