package agent

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakePort behaves like a guest's virtio-serial port: reads return EOF
// while no host is connected, and a new host may connect at any moment,
// possibly before the guest noticed the previous one leaving.
type fakePort struct {
	mu   sync.Mutex
	cond *sync.Cond
	host net.Conn // guest end of the current host's pipe
}

func newFakePort() *fakePort {
	p := &fakePort{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// connect attaches a new host and returns its end.
func (p *fakePort) connect() net.Conn {
	g, h := net.Pipe()
	p.mu.Lock()
	if p.host != nil {
		p.host.Close()
	}
	p.host = g
	p.mu.Unlock()
	return h
}

func (p *fakePort) cur() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.host
}

// open returns a handle on the port, as opening /dev/vportNpM would.
func (p *fakePort) open() (io.ReadWriteCloser, error) { return &portHandle{p: p}, nil }

type portHandle struct {
	p      *fakePort
	mu     sync.Mutex
	closed bool
}

func (h *portHandle) Read(b []byte) (int, error) {
	c := h.p.cur()
	if h.isClosed() {
		return 0, net.ErrClosed
	}
	if c == nil {
		return 0, io.EOF
	}
	n, err := c.Read(b)
	if err != nil {
		return n, io.EOF // the host left
	}
	return n, nil
}

func (h *portHandle) Write(b []byte) (int, error) {
	c := h.p.cur()
	if h.isClosed() || c == nil {
		return 0, net.ErrClosed
	}
	return c.Write(b)
}

func (h *portHandle) isClosed() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.closed }
func (h *portHandle) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	// Like closing the device: a read blocked on the host's data ends.
	if c := h.p.cur(); c != nil {
		c.SetReadDeadline(time.Unix(1, 0))
		c.SetReadDeadline(time.Time{})
	}
	return nil
}

// echoServer answers each accepted stream line by line.
func echoServer(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(c, "echo:"+line)
			}
		}()
	}
}

func roundTrip(t *testing.T, m *MuxSession, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := m.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, msg+"\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "echo:"+msg+"\n" {
		t.Fatalf("round trip = %q, %v; want %q", got, err, "echo:"+msg+"\n")
	}
}

func TestMux_ConcurrentStreamsAndHostReconnects(t *testing.T) {
	port := newFakePort()
	l := ListenMux(port.open, nil)
	defer l.Close()
	go echoServer(l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A host that connects before the guest reads anything.
	h1, err := DialMux(ctx, port.connect())
	if err != nil {
		t.Fatalf("first host: %v", err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { roundTrip(t, h1, "one-"+string(rune('a'+i))) })
	}
	wg.Wait()

	// A second host takes the port over at once, before the guest saw the
	// first leave: the handshake resynchronises both ends.
	h2, err := DialMux(ctx, port.connect())
	if err != nil {
		t.Fatalf("second host: %v", err)
	}
	roundTrip(t, h2, "two")
	select {
	case <-h1.Done():
	case <-time.After(5 * time.Second):
		t.Error("first host's session still open after the port was taken over")
	}

	// A host that leaves; the guest waits; a third one comes.
	h2.Close()
	time.Sleep(100 * time.Millisecond)
	h3, err := DialMux(ctx, port.connect())
	if err != nil {
		t.Fatalf("third host: %v", err)
	}
	roundTrip(t, h3, "three")
	h3.Close()
}

func TestMux_DialMuxGivesUpWithContext(t *testing.T) {
	g, h := net.Pipe()
	defer g.Close()
	go io.Copy(io.Discard, g) // a guest that never answers
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DialMux(ctx, h); err == nil {
		t.Fatal("DialMux to a silent guest succeeded")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("DialMux took %v to give up", el)
	}
}

func TestReadMuxFrame_SkipsGarbage(t *testing.T) {
	var n muxNonce
	copy(n[:], "12345678")
	data := append([]byte("\xff\xffSTACY garbage \xffSTACYVM-MU"), muxFrame(muxHello, n)...)
	kind, got, err := readMuxFrame(bufio.NewReader(bytes.NewReader(data)))
	if err != nil || kind != muxHello || got != n {
		t.Fatalf("readMuxFrame = %c %q %v; want H %q", kind, got, err, n)
	}
}
