package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Watch streams changes under path (recursively for a directory unless
// recursive is false) to fn, starting with one WatchReady event. It returns
// when ctx ends (nil), when fn returns an error (that error), when the
// watched path is deleted (nil, after its delete event) or when the stream
// breaks (Unavailable).
func (c *Client) Watch(ctx context.Context, path string, recursive bool, fn func(WatchEvent) error) error {
	q := url.Values{"path": {path}}
	if !recursive {
		q.Set("recursive", "false")
	}
	resp, err := c.doWith(c.bulk, ctx, http.MethodGet, "/files/watch", q, nil, -1, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4<<10), 64<<10)
	for sc.Scan() {
		var ev WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed watch event")
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return errs.Wrap(errs.Unavailable, err, "watch stream from sandbox agent broke")
	}
	return nil
}
