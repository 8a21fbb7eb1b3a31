package vm

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

// A VM's agent channel (virtio-serial) admits one host connection at a time,
// but several host processes may want the agent: a server and its
// successor, a test's two provider instances. So one process owns the
// channel, marked by an exclusive flock on channel.lock (released by the
// kernel when the owner dies), and serves a plain unix socket, agent.sock,
// on which every other process reaches the agent: each connection there is
// relayed over one stream of the owner's multiplexed session. A process
// that finds no one serving agent.sock takes the channel over.

// channel is an agent channel this instance owns.
type channel struct {
	sess *agent.MuxSession
	lock *os.File
	ln   net.Listener
	sock string
	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

func lockPath(dir string) string  { return filepath.Join(dir, "channel.lock") }
func proxyPath(dir string) string { return filepath.Join(dir, "agent.sock") }

// errChannelBusy: another process owns the channel.
var errChannelBusy = errors.New("agent channel owned by another process")

// openChannel takes the channel of machine m (in dir) over: lock, connect,
// handshake (which waits for the guest agent, bounded by ctx), serve the
// relay socket.
func openChannel(ctx context.Context, v vmm.VMM, m vmm.Machine, dir string) (ch *channel, err error) {
	lock, err := os.OpenFile(lockPath(dir), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "sandbox directory is gone")
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, errChannelBusy
	}
	defer func() {
		if err != nil {
			lock.Close() // releases the flock
		}
	}()
	conn, err := v.DialAgent(ctx, m)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "connect to the VM's agent channel")
	}
	sess, err := agent.DialMux(ctx, conn)
	if err != nil {
		return nil, err
	}
	sock := proxyPath(dir)
	os.Remove(sock) // a previous owner's, dead (we hold the lock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		sess.Close()
		return nil, errs.Wrap(errs.Internal, err, "serve agent relay socket")
	}
	os.Chmod(sock, 0o600)
	ch = &channel{sess: sess, lock: lock, ln: ln, sock: sock, done: make(chan struct{})}
	ch.wg.Add(2)
	go ch.serve()
	go func() { // owned by ch: tears it down when the session ends
		defer ch.wg.Done()
		select {
		case <-sess.Done():
			ch.shutdown()
		case <-ch.done:
		}
	}()
	return ch, nil
}

// serve relays every connection on the relay socket over a new stream.
func (ch *channel) serve() {
	defer ch.wg.Done()
	for {
		c, err := ch.ln.Accept()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := ch.sess.Dial(ctx)
		cancel()
		if err != nil {
			c.Close()
			continue
		}
		ch.wg.Add(1)
		go func() { defer ch.wg.Done(); relay(c, st) }()
	}
}

// relay copies both ways. The client's end of input half-closes the
// stream (yamux sends FIN; the answer still flows back); the agent's end of
// output ends the relay: the agent never half-closes a connection it still
// reads from.
func relay(c net.Conn, st net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(st, c)
		st.Close()
	})
	io.Copy(c, st)
	c.Close()
	st.Close()
	wg.Wait()
}

// shutdown stops the relay and the session and releases the lock; it does
// not wait for relays in flight (they end as the session closes).
func (ch *channel) shutdown() {
	ch.once.Do(func() {
		close(ch.done)
		ch.ln.Close()
		os.Remove(ch.sock)
		ch.sess.Close()
		ch.lock.Close()
	})
}

// close shuts down and waits for the relay goroutines.
func (ch *channel) close() {
	ch.shutdown()
	ch.wg.Wait()
}

// alive reports whether the session still runs.
func (ch *channel) alive() bool {
	select {
	case <-ch.done:
		return false
	case <-ch.sess.Done():
		return false
	default:
		return true
	}
}

// dialer returns the agent dial function for sandbox id: through the
// channel this instance owns, else through another owner's relay socket,
// else by taking the channel over.
func (p *Provider) dialer(id string) agent.DialFunc {
	dir := p.dir(id)
	return func(ctx context.Context) (net.Conn, error) {
		if ch := p.ownedChannel(id); ch != nil {
			return ch.sess.Dial(ctx)
		}
		var d net.Dialer
		if c, err := d.DialContext(ctx, "unix", proxyPath(dir)); err == nil {
			return c, nil
		}
		ch, err := p.takeOver(ctx, id)
		if err != nil {
			return nil, err
		}
		return ch.sess.Dial(ctx)
	}
}

func (p *Provider) ownedChannel(id string) *channel {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.channels[id]
	if ch != nil && !ch.alive() {
		delete(p.channels, id)
		return nil
	}
	return ch
}

// takeOver opens the channel of an existing sandbox (one call at a time per
// sandbox in this instance).
func (p *Provider) takeOver(ctx context.Context, id string) (*channel, error) {
	p.mu.Lock()
	mu := p.opening[id]
	if mu == nil {
		mu = &sync.Mutex{}
		p.opening[id] = mu
	}
	p.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if ch := p.ownedChannel(id); ch != nil {
		return ch, nil
	}
	st, err := p.readState(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.New(errs.NotFound, "sandbox %s is gone", id)
	}
	if err != nil {
		return nil, err
	}
	if !p.vmm.Alive(st.Machine) {
		return nil, errs.New(errs.Unavailable, "sandbox %s: its VM is not running", id)
	}
	// The guest agent already runs: the handshake is one round trip, but a
	// loaded TCG guest can take a while to be scheduled.
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ch, err := openChannel(octx, p.vmm, st.Machine, p.dir(id))
	if errors.Is(err, errChannelBusy) {
		// Another process owns it but its relay did not answer above:
		// it is starting or stopping; one more try at its socket.
		var d net.Dialer
		if c, derr := d.DialContext(ctx, "unix", proxyPath(p.dir(id))); derr == nil {
			c.Close()
			return nil, errs.New(errs.Unavailable, "agent channel of %s is owned by another process; retry", id)
		}
		return nil, errs.New(errs.Unavailable, "agent channel of %s is owned by another process that does not serve it", id)
	}
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.channels[id] = ch
	p.mu.Unlock()
	return ch, nil
}

// dropChannel closes and forgets the channel and client of id.
func (p *Provider) dropChannel(id string) {
	p.mu.Lock()
	ch := p.channels[id]
	delete(p.channels, id)
	c := p.clients[id]
	delete(p.clients, id)
	delete(p.opening, id)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if ch != nil {
		ch.close()
	}
}
