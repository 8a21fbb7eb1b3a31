package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// newDialer returns a function opening one connection to the worker at u:
// plain TCP for http, TLS (handshake included) for https. Failures are
// Unavailable (Timeout when ctx's deadline passed), never unclassified.
func newDialer(u *url.URL, tlsCfg *tls.Config, timeout time.Duration) func(context.Context) (net.Conn, error) {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	td := &tls.Dialer{NetDialer: nd, Config: tlsCfg}
	return func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		var err error
		if tlsCfg != nil {
			c, err = td.DialContext(ctx, "tcp", addr)
		} else {
			c, err = nd.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, errs.Wrap(errs.Timeout, err, "connecting to worker %s timed out", addr)
			}
			return nil, errs.Wrap(errs.Unavailable, err, "worker %s unreachable", addr)
		}
		return c, nil
	}
}

// dialRelay opens one agent connection to sandbox id through the worker: a
// connection to the worker, upgraded to the relay protocol. After the 101
// answer the connection carries the agent protocol unchanged, so HTTP
// keep-alive, streaming, sessions and port tunnels work as on a local
// socket. ctx bounds the dial and the handshake only.
func (p *Provider) dialRelay(ctx context.Context, id string) (net.Conn, error) {
	conn, err := p.dialer(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	br, err := p.relayHandshake(conn, id)
	if !stop() || ctx.Err() != nil {
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errs.Wrap(errs.Timeout, ctx.Err(), "agent relay handshake with the worker timed out")
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

func (p *Provider) relayHandshake(conn net.Conn, id string) (*bufio.Reader, error) {
	req := fmt.Sprintf("GET %s%s/agent HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
		p.base.EscapedPath(), sandboxPath(id), p.base.Host, p.auth, RelayProtocol)
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "worker unreachable")
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "worker sent a malformed relay answer")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return br, nil
	}
	defer resp.Body.Close()
	return nil, DecodeError(resp)
}

// bufferedConn is a connection whose first bytes were read ahead into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
