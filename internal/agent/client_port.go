package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// ErrPortClosed is wrapped by DialPort's error when the agent answered that
// nothing listens on the port (as opposed to the agent being unreachable).
var ErrPortClosed = errors.New("agent: nothing listens on the sandbox port")

// DialPort opens a raw TCP stream to port on the sandbox's loopback, through
// the agent. The returned connection is the caller's to close; its deadlines
// apply to the agent connection underneath. A port nobody listens on fails
// fast with an Unavailable error wrapping ErrPortClosed.
func (c *Client) DialPort(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, errs.New(errs.Invalid, "port %d is not between 1 and 65535", port)
	}
	conn, err := c.rawDial(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	// The handshake is bounded by ctx; the tunnel itself is not.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	br, err := tunnelHandshake(conn, port)
	if !stop() || ctx.Err() != nil {
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errs.Wrap(errs.Timeout, ctx.Err(), "connecting to sandbox port %d timed out", port)
		}
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() == 0 {
		return conn, nil
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// rawDial opens one connection to the agent with the bulk transport's
// dialer (large socket buffers), outside any connection pool.
func (c *Client) rawDial(ctx context.Context) (net.Conn, error) {
	tr, ok := c.bulk.Transport.(*http.Transport)
	if !ok || tr.DialContext == nil {
		return nil, errors.New("agent client has no dialer")
	}
	return tr.DialContext(ctx, "tcp", "agent:80")
}

func tunnelHandshake(conn net.Conn, port int) (*bufio.Reader, error) {
	req := fmt.Sprintf("GET /v1/ports/%d/connect HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", port, TunnelProtocol)
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent unreachable")
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent sent a malformed tunnel answer")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return br, nil
	}
	defer resp.Body.Close()
	aerr := decodeError(resp)
	if resp.StatusCode == StatusPortClosed {
		return nil, errs.Wrap(errs.Unavailable, ErrPortClosed, "%s", errs.Message(aerr))
	}
	return nil, aerr
}

// bufferedConn is a net.Conn whose first bytes were read ahead into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the underlying connection when it can.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

var _ net.Conn = (*bufferedConn)(nil)
