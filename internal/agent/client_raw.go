package agent

import (
	"context"
	"net"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// DialRaw opens one new connection to the agent, outside the client's
// connection pools, for relays that carry the agent protocol unchanged
// (stacyvm worker). The connection is the caller's to close.
func (c *Client) DialRaw(ctx context.Context) (net.Conn, error) {
	conn, err := c.rawDial(ctx)
	if err != nil {
		if errs.ClassOf(err) != errs.Internal {
			return nil, err
		}
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	return conn, nil
}
