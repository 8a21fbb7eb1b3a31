package agent

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// MuxSession is the host end of a multiplexed agent channel (see
// listen_mux.go): one byte stream to the guest carrying any number of agent
// connections. Give its Dial to NewClient. Safe for concurrent use.
type MuxSession struct {
	conn net.Conn
	sess *yamux.Session
}

// DialMux runs the host side of the handshake on conn (a fresh connection
// to the guest's channel) and starts a session. It keeps saying HELLO until
// the guest agent answers, so it doubles as the wait for the agent to come
// up; ctx bounds that wait. On error conn is closed.
func DialMux(ctx context.Context, conn net.Conn) (*MuxSession, error) {
	nonce := newMuxNonce()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // owned here: ends when stop closes or a write fails
		t := time.NewTicker(muxHelloEvery)
		defer t.Stop()
		hello := muxFrame(muxHello, nonce)
		for {
			if _, err := conn.Write(hello); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	// A cancelled ctx interrupts the read below.
	unblock := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	r := bufio.NewReaderSize(conn, 64<<10)
	var err error
	for {
		var kind byte
		var n muxNonce
		kind, n, err = readMuxFrame(r)
		if err != nil || (kind == muxAck && n == nonce) {
			break
		}
	}
	close(stop)
	wg.Wait()
	if !unblock() || ctx.Err() != nil {
		conn.Close()
		return nil, errs.Wrap(errs.Timeout, context.Cause(ctx), "sandbox agent did not answer on its channel")
	}
	if err != nil {
		conn.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent channel closed during handshake")
	}
	if _, err := conn.Write(muxFrame(muxStart, nonce)); err != nil {
		conn.Close()
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent channel")
	}
	sess, err := yamux.Client(bufConn{r: r, WriteCloser: conn}, muxConfig())
	if err != nil {
		conn.Close()
		return nil, errs.Wrap(errs.Internal, err, "start agent channel session")
	}
	return &MuxSession{conn: conn, sess: sess}, nil
}

// Dial opens one agent connection (a new stream). It fails at once when the
// session has ended.
func (m *MuxSession) Dial(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := m.sess.Open()
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox agent channel is closed")
	}
	return &streamConn{Conn: c}, nil
}

// streamConn gives a yamux stream the Close of a socket. yamux's Close only
// half-closes (FIN; reads go on until the peer's FIN), but a client that
// closes a connection, like net/http cancelling a request, expects pending
// and later reads to fail at once, as they would on a socket.
type streamConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *streamConn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(b)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.Conn.SetReadDeadline(time.Unix(1, 0)) // wakes a blocked Read
	return c.Conn.Close()
}

// Done is closed when the session ends (channel closed, guest gone).
func (m *MuxSession) Done() <-chan struct{} { return m.sess.CloseChan() }

// Close ends the session and closes the channel.
func (m *MuxSession) Close() error { return m.sess.Close() }
