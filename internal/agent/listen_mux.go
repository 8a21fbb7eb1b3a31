package agent

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// The agent channel of a QEMU microVM is one virtio-serial port: a single
// byte stream, while the agent protocol wants many concurrent HTTP/1.1
// connections. yamux multiplexes streams over it. The host end of the port
// may disconnect and a new host (a restarted server) may connect, and the
// guest cannot always tell the two apart (both can happen between two of
// its reads), so every host connection begins with a handshake that makes
// both ends start a fresh yamux session at the same byte:
//
//	host:  HELLO(n) repeated every muxHelloEvery until it reads ACK(n)
//	guest: scans for HELLO(n), answers ACK(n), skips repeated HELLO(n)
//	host:  START(n), then yamux (client side)
//	guest: on START(n), yamux (server side)
//
// n is a random nonce per host connection. Both ends discard whatever comes
// before the frame they wait for (the previous session's leftovers). A new
// host's HELLO breaks a guest session still running for the old host (it is
// not a valid yamux header), and the guest goes back to scanning.

// muxMagic starts every handshake frame: kind byte, then an 8-byte nonce.
// 0xff is not a yamux version, so a frame arriving in a session ends it.
const muxMagic = "\xffSTACYVM-MUX1"

// Handshake frame kinds.
const (
	muxHello = 'H'
	muxAck   = 'A'
	muxStart = 'S'
)

// muxHelloEvery is how often the host repeats HELLO until acknowledged.
const muxHelloEvery = 200 * time.Millisecond

// muxPoll is how long the guest sleeps when its port reports no host
// (reads return EOF until a host connects; virtio_console cannot be
// waited on for that).
const muxPoll = 25 * time.Millisecond

type muxNonce [8]byte

func muxFrame(kind byte, n muxNonce) []byte {
	b := make([]byte, 0, len(muxMagic)+1+len(n))
	b = append(b, muxMagic...)
	b = append(b, kind)
	return append(b, n[:]...)
}

// readMuxFrame discards bytes up to the next handshake frame and returns it.
func readMuxFrame(r *bufio.Reader) (byte, muxNonce, error) {
	var n muxNonce
	matched := 0
	for matched < len(muxMagic) {
		c, err := r.ReadByte()
		if err != nil {
			return 0, n, err
		}
		switch {
		case c == muxMagic[matched]:
			matched++
		case c == muxMagic[0]: // the magic's first byte occurs nowhere else in it
			matched = 1
		default:
			matched = 0
		}
	}
	kind, err := r.ReadByte()
	if err != nil {
		return 0, n, err
	}
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return 0, n, err
	}
	return kind, n, nil
}

// muxConfig is the yamux configuration of both ends. Keepalives are off:
// under TCG emulation a busy guest can take seconds to answer, and a dead
// host or guest shows up as EOF on the channel anyway.
func muxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.ConnectionWriteTimeout = 60 * time.Second
	c.StreamOpenTimeout = 0 // callers bound their requests with contexts
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = io.Discard
	return c
}

// bufConn reads through a bufio.Reader (which may hold bytes read past the
// handshake) and writes and closes the underlying stream.
type bufConn struct {
	r *bufio.Reader
	io.WriteCloser
}

func (c bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// MuxListener is the guest end of a multiplexed agent channel: a
// net.Listener whose connections are yamux streams opened by the host. It
// survives host reconnections: each one starts a new session.
type MuxListener struct {
	open  func() (io.ReadWriteCloser, error)
	log   *slog.Logger
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu  sync.Mutex
	cur io.Closer // the open channel, closed by Close
}

// ListenMux serves host sessions over the byte streams open returns (one
// at a time; open is called again after each session ends). log may be nil.
func ListenMux(open func() (io.ReadWriteCloser, error), log *slog.Logger) *MuxListener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &MuxListener{open: open, log: log, conns: make(chan net.Conn), done: make(chan struct{})}
	l.wg.Add(1)
	go l.loop()
	return l
}

// ListenVirtioSerial serves the agent channel on a virtio-serial port: an
// absolute device path (/dev/vport0p1) or a port name, looked up in
// /sys/class/virtio-ports (there is no udev in the guest to make the
// /dev/virtio-ports/NAME links).
func ListenVirtioSerial(port string, log *slog.Logger) (*MuxListener, error) {
	if port == "" {
		return nil, errors.New("virtio-serial: empty port")
	}
	open := func() (io.ReadWriteCloser, error) {
		path := port
		if !strings.HasPrefix(port, "/") {
			p, err := virtioPortByName(port)
			if err != nil {
				return nil, err
			}
			path = p
		}
		return os.OpenFile(path, os.O_RDWR, 0)
	}
	return ListenMux(open, log), nil
}

func virtioPortByName(name string) (string, error) {
	ents, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(e)), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q", name)
}

func (l *MuxListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *MuxListener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
		return true
	}
}

func (l *MuxListener) loop() {
	defer l.wg.Done()
	for !l.closed() {
		ch, err := l.open()
		if err != nil {
			l.log.Debug("agent channel not ready", "err", err)
			if !l.sleep(100 * time.Millisecond) {
				return
			}
			continue
		}
		l.mu.Lock()
		l.cur = ch
		l.mu.Unlock()
		if l.closed() { // Close ran before cur was set
			ch.Close()
			return
		}
		if err := l.session(ch); err != nil && !l.closed() {
			l.log.Info("agent channel session ended; waiting for the host", "err", err)
		}
		ch.Close()
	}
}

// session runs one handshake and one yamux session on ch.
func (l *MuxListener) session(ch io.ReadWriteCloser) error {
	r := bufio.NewReaderSize(ch, 64<<10)
	var nonce muxNonce
	acked := false
	for {
		kind, n, err := readMuxFrame(r)
		if errors.Is(err, io.EOF) { // no host connected: wait for one
			if !l.sleep(muxPoll) {
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case kind == muxHello && (!acked || n != nonce):
			nonce, acked = n, true
			if _, err := ch.Write(muxFrame(muxAck, n)); err != nil {
				return err
			}
		case kind == muxStart && acked && n == nonce:
			return l.serve(bufConn{r: r, WriteCloser: &guardedWriter{w: ch}})
		}
	}
}

func (l *MuxListener) serve(conn bufConn) error {
	sess, err := yamux.Server(conn, muxConfig())
	if err != nil {
		return err
	}
	defer sess.Close()
	l.log.Info("agent channel connected")
	for {
		st, err := sess.Accept()
		if err != nil {
			return err
		}
		select {
		case l.conns <- st:
		case <-l.done:
			st.Close()
			return nil
		}
	}
}

// guardedWriter refuses writes once closed, so a finished session can never
// put bytes on the channel the next session uses; closing also closes the
// channel, which interrupts a read or write blocked on it.
type guardedWriter struct {
	w      io.WriteCloser
	closed atomic.Bool
}

func (g *guardedWriter) Write(b []byte) (int, error) {
	if g.closed.Load() {
		return 0, net.ErrClosed
	}
	return g.w.Write(b)
}

func (g *guardedWriter) Close() error { g.closed.Store(true); return g.w.Close() }

// Accept waits for the next stream the host opens.
func (l *MuxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the channel; it waits for the session
// loop to end.
func (l *MuxListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		if l.cur != nil {
			l.cur.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return nil
}

// Addr names the channel.
func (l *MuxListener) Addr() net.Addr { return muxAddr{} }

type muxAddr struct{}

func (muxAddr) Network() string { return "mux" }
func (muxAddr) String() string  { return "agent-channel" }

// newMuxNonce returns a random handshake nonce.
func newMuxNonce() muxNonce {
	var n muxNonce
	rand.Read(n[:])
	return n
}

var _ net.Listener = (*MuxListener)(nil)

// GuestConfig is what a microVM's agent reads at boot (written by the host
// into the sandbox's initramfs): everything a container runtime would
// otherwise set up for it.
type GuestConfig struct {
	Hostname string   `json:"hostname"`
	Env      []string `json:"env"`    // KEY=VALUE, the whole environment of every exec
	Listen   string   `json:"listen"` // e.g. "virtio-serial://stacyvm.agent"
	Workdir  string   `json:"workdir"`
	LogLevel string   `json:"log_level,omitempty"`
	// Network is "user" when the VM has a user-mode NAT device; the
	// initramfs configures it before the agent starts.
	Network string `json:"network,omitempty"`
	// PidsLimit caps the processes of the sandbox (pids cgroup in the
	// guest); 0 = no cap beyond the kernel's.
	PidsLimit int64 `json:"pids_limit,omitempty"`
}
