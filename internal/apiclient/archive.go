package apiclient

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// ArchiveResult is the summary of an archive upload.
type ArchiveResult struct {
	Status        string `json:"status"`
	Files         int    `json:"files"`
	Dirs          int    `json:"dirs"`
	Symlinks      int    `json:"symlinks"`
	HardLinks     int    `json:"hard_links"`
	Bytes         int64  `json:"bytes"`
	Skipped       int    `json:"skipped"`
	ReceivedBytes int64  `json:"received_bytes"`
}

// UploadArchive extracts the tar stream r under the directory dir inside
// the sandbox (created when missing).
func (c *Client) UploadArchive(ctx context.Context, id, dir string, r io.Reader) (*ArchiveResult, error) {
	var res ArchiveResult
	if err := c.call(ctx, request{method: http.MethodPut, path: sandboxPath(id, "/files/archive"),
		query: url.Values{"path": {dir}}, raw: r, contentType: "application/x-tar"}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// DownloadArchive opens the tree under dir as a tar stream (names relative
// to dir); the caller closes it. A transfer that fails midway ends in a
// read error, never in a short but valid archive.
func (c *Client) DownloadArchive(ctx context.Context, id, dir string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sandboxPath(id, "/files/archive"),
		query: url.Values{"path": {dir}}, accept: "application/x-tar"})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
