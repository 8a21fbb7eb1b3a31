package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
)

// relayDialTimeout bounds finding the sandbox and dialing its agent.
const relayDialTimeout = 10 * time.Second

// relay is GET /v1/sandboxes/{id}/agent with Upgrade: stacyvm-agent-relay.
// It dials one connection to the sandbox's agent, answers 101 and then
// copies bytes both ways until either side is done. Nothing is parsed or
// buffered beyond the copy buffers: the agent protocol (HTTP/1.1 with
// keep-alive, streamed exec frames, session and port-tunnel upgrades, bulk
// file bodies) passes through unchanged.
func (s *Server) relay(w http.ResponseWriter, r *http.Request) error {
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), remote.RelayProtocol) {
		return errs.New(errs.Invalid, "the agent relay needs Connection: Upgrade and Upgrade: %s", remote.RelayProtocol)
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), relayDialTimeout)
	defer cancel()
	h, err := s.mustResolve(ctx, id)
	if err != nil {
		return err
	}
	ac, err := s.p.Agent(ctx, h)
	if err != nil {
		return err
	}
	up, err := ac.DialRaw(ctx)
	if err != nil {
		return err
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return errs.Wrap(errs.Internal, err, "agent relay: take over the connection")
	}
	// The server's read and write deadlines would cut a long exec or a
	// download; the relay has none, like a local agent socket.
	conn.SetDeadline(time.Time{})
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + remote.RelayProtocol + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		up.Close()
		return nil // the client is gone; there is no one to answer
	}
	var client net.Conn = conn
	if brw.Reader.Buffered() > 0 { // bytes the client sent right after its request
		client = &readerConn{Conn: conn, r: io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), conn)}
	}
	s.relays.run(id, client, up)
	return nil
}

// relaySet owns the running relays: Destroy ends a sandbox's, Close all.
type relaySet struct {
	mu     sync.Mutex
	active map[*relayConns]string // -> sandbox id
	wg     sync.WaitGroup
	closed bool
}

type relayConns struct{ client, agent net.Conn }

func (c *relayConns) close() {
	c.client.Close()
	c.agent.Close()
}

// run copies between client and agent until both directions end, on the
// calling goroutine plus one it owns.
func (rs *relaySet) run(id string, client, agent net.Conn) {
	rc := &relayConns{client: client, agent: agent}
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		rc.close()
		return
	}
	if rs.active == nil {
		rs.active = map[*relayConns]string{}
	}
	rs.active[rc] = id
	rs.wg.Add(1)
	rs.mu.Unlock()
	defer func() {
		rc.close()
		rs.mu.Lock()
		delete(rs.active, rc)
		rs.mu.Unlock()
		rs.wg.Done()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(agent, client, rc)
	}()
	pipe(client, agent, rc)
	<-done
}

// pipe copies src to dst. At src's end it half-closes dst, so the peer sees
// the end as it would on a direct connection; on an error it closes both.
func pipe(dst, src net.Conn, rc *relayConns) {
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		rc.close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return
		}
	}
	rc.close()
}

// closeSandbox ends the relays of sandbox id (it was destroyed).
func (rs *relaySet) closeSandbox(id string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for rc, sid := range rs.active {
		if sid == id {
			rc.close()
		}
	}
}

// closeAll ends every relay, refuses new ones and waits for them.
func (rs *relaySet) closeAll() {
	rs.mu.Lock()
	rs.closed = true
	for rc := range rs.active {
		rc.close()
	}
	rs.mu.Unlock()
	rs.wg.Wait()
}

// readerConn is a connection whose first bytes come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite passes the half-close on to the connection underneath.
func (c *readerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// headerHas reports whether the comma-separated header name lists token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
