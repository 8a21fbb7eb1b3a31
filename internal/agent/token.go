package agent

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// UpgradeProtocol is the HTTP Upgrade token that opens an authenticated
// agent connection. It is the same shape (and value) as the worker relay
// (internal/provider/remote RelayProtocol): one GET with
// "Connection: Upgrade", "Upgrade: stacyvm-agent-relay", answered by 101,
// after which the connection carries the agent protocol unchanged. It
// passes through any HTTP reverse proxy that forwards upgrades (E2B's
// sandbox port proxy does), so sessions, port tunnels and streamed execs
// work as on a local socket.
const UpgradeProtocol = "stacyvm-agent-relay"

// handshakeTimeout bounds one connection's upgrade request on the agent side.
const handshakeTimeout = 10 * time.Second

// maxHandshakeHeader bounds the upgrade request's header bytes.
const maxHandshakeHeader = 16 << 10

// TokenListener wraps l so that every accepted connection must first send
// the upgrade request carrying "Authorization: Bearer <token>"; the token
// is compared in constant time. Connections that fail are answered 401 (or
// 400) and closed; Accept only returns connections that passed, already
// switched to the agent protocol. Handshakes run concurrently, so a slow
// or silent client does not hold up others. token must not be empty.
func TokenListener(l net.Listener, token string) (net.Listener, error) {
	if token == "" {
		return nil, errs.New(errs.Invalid, "agent token must not be empty")
	}
	tl := &tokenListener{
		Listener: l,
		token:    []byte(token),
		ready:    make(chan net.Conn),
		done:     make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
	}
	tl.wg.Go(tl.acceptLoop)
	return tl, nil
}

type tokenListener struct {
	net.Listener
	token []byte
	ready chan net.Conn
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	err     error                 // the inner Accept's terminal error
	pending map[net.Conn]struct{} // connections in their handshake
	wg      sync.WaitGroup        // the accept loop and handshakes (tests wait on it)
	once    sync.Once
}

// acceptLoop owns the inner listener's Accept; it ends when that fails
// (Close closes the inner listener).
func (tl *tokenListener) acceptLoop() {
	for {
		c, err := tl.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			tl.mu.Lock()
			tl.err = err
			tl.mu.Unlock()
			tl.Close()
			return
		}
		tl.mu.Lock()
		select {
		case <-tl.done:
			tl.mu.Unlock()
			c.Close()
			return
		default:
		}
		tl.pending[c] = struct{}{}
		tl.wg.Go(func() { tl.handshake(c) })
		tl.mu.Unlock()
	}
}

func (tl *tokenListener) handshake(c net.Conn) {
	conn, err := acceptUpgrade(c, tl.token)
	tl.mu.Lock()
	delete(tl.pending, c)
	tl.mu.Unlock()
	if err != nil {
		c.Close()
		return
	}
	select {
	case tl.ready <- conn:
	case <-tl.done:
		conn.Close()
	}
}

// Accept returns the next authenticated connection.
func (tl *tokenListener) Accept() (net.Conn, error) {
	select {
	case c := <-tl.ready:
		return c, nil
	case <-tl.done:
		tl.mu.Lock()
		err := tl.err
		tl.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
}

// Close stops accepting and closes connections still in their handshake;
// the goroutines the listener owns end right after (it does not wait: the
// accept loop itself calls Close when the inner listener fails).
func (tl *tokenListener) Close() error {
	var err error
	tl.once.Do(func() {
		tl.mu.Lock()
		close(tl.done)
		for c := range tl.pending {
			c.Close()
		}
		tl.mu.Unlock()
		err = tl.Listener.Close()
	})
	return err
}

// acceptUpgrade reads one upgrade request from c and answers it. On success
// the returned connection is positioned at the first agent-protocol byte.
func acceptUpgrade(c net.Conn, token []byte) (net.Conn, error) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(io.LimitReader(c, maxHandshakeHeader), 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	if req.Method != http.MethodGet || !headerHasToken(req.Header, "Connection", "upgrade") ||
		!strings.EqualFold(req.Header.Get("Upgrade"), UpgradeProtocol) {
		writeHandshakeError(c, http.StatusBadRequest, errs.Invalid,
			"this agent listener needs GET with Connection: Upgrade and Upgrade: "+UpgradeProtocol)
		return nil, errors.New("not an agent upgrade request")
	}
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), token) != 1 {
		writeHandshakeError(c, http.StatusUnauthorized, errs.Unauthorized, "missing or wrong agent token")
		return nil, errors.New("bad agent token")
	}
	if _, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+UpgradeProtocol+"\r\n\r\n"); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 { // the client's first agent bytes, read ahead
		b, _ := br.Peek(n)
		return &prefixConn{Conn: c, prefix: append([]byte(nil), b...)}, nil
	}
	return c, nil
}

func writeHandshakeError(c net.Conn, status int, class errs.Class, msg string) {
	body, _ := json.Marshal(ErrorBody{Code: class.Code(), Message: msg})
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// DialUpgrade runs the client side of the handshake on conn, a fresh
// connection to a TokenListener (directly or through an HTTP proxy that
// routes by host). host is the Host header, path the request path. ctx
// bounds the handshake. On success the returned connection carries the
// agent protocol; on error conn is closed and the error is Unauthorized
// (wrong token), NotFound/Unavailable (the proxy found no such sandbox or
// port), Timeout or Unavailable.
func DialUpgrade(ctx context.Context, conn net.Conn, host, path, token string, extra http.Header) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", path, host, token, UpgradeProtocol)
	for k, vs := range extra {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	var resp *http.Response
	var br *bufio.Reader
	_, err := io.WriteString(conn, b.String())
	if err == nil {
		br = bufio.NewReaderSize(conn, 4<<10)
		resp, err = http.ReadResponse(br, nil)
	}
	if !stop() || ctx.Err() != nil {
		conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errs.Wrap(errs.Timeout, ctx.Err(), "agent upgrade handshake timed out")
		}
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "request cancelled")
	}
	if err != nil {
		conn.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "agent upgrade handshake failed")
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		defer resp.Body.Close()
		return nil, upgradeError(resp)
	}
	conn.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		p, _ := br.Peek(n)
		return &prefixConn{Conn: conn, prefix: append([]byte(nil), p...)}, nil
	}
	return conn, nil
}

// upgradeError classifies a refused upgrade. An agent answers with its
// ErrorBody; a proxy in between answers with its own body, which is not
// passed on (it may be HTML).
func upgradeError(resp *http.Response) error {
	var body ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if json.Unmarshal(raw, &body) == nil && body.Code != "" {
		return errs.New(errs.ClassFromCode(body.Code), "agent refused the connection: %s", body.Message)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return errs.New(errs.Unauthorized, "agent connection refused: HTTP %d", resp.StatusCode)
	case http.StatusNotFound:
		return errs.New(errs.NotFound, "no agent at this address: HTTP %d", resp.StatusCode)
	}
	return errs.New(errs.Unavailable, "agent unreachable: HTTP %d", resp.StatusCode)
}

// prefixConn replays bytes read ahead during a handshake before reading
// from the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// CloseWrite passes a half-close on, for connections that support it.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// headerHasToken reports whether the comma-separated header name lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
