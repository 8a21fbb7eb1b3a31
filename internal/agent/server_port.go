package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Port tunnels: GET /v1/ports/{port}/connect with "Connection: Upgrade" and
// "Upgrade: stacyvm-tcp". The agent dials the port on the sandbox's own
// loopback first; only when that succeeds does it answer 101 and turn the
// connection into a raw byte pipe to the port. A port nobody listens on is
// answered before any upgrade (StatusPortClosed with an ErrorBody), so the
// host can tell "nothing listens" from "agent unreachable" at once. Because
// the agent dials from inside, this works with network "none" too.

// TunnelProtocol is the Upgrade token of a port tunnel.
const TunnelProtocol = "stacyvm-tcp"

// StatusPortClosed is the agent's answer when nothing accepts connections on
// the requested port (connection refused or the dial timed out).
const StatusPortClosed = http.StatusBadGateway

// portDialTimeout bounds the in-sandbox dial; loopback answers at once, so
// a slow dial means a stuck listener (full accept queue).
const portDialTimeout = 5 * time.Second

// ParsePort validates a TCP port given as text: 1-65535, digits only.
func ParsePort(s string) (int, error) {
	if s == "" || len(s) > 5 {
		return 0, errs.New(errs.Invalid, "port %q is not a number from 1 to 65535", printableArg(s))
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || s[0] == '+' || s[0] == '-' {
		return 0, errs.New(errs.Invalid, "port %q is not a number from 1 to 65535", printableArg(s))
	}
	return p, nil
}

// printableArg shortens and sanitises user input for an error message.
func printableArg(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func (s *Server) handlePortConnect(w http.ResponseWriter, r *http.Request) {
	port, err := ParsePort(r.PathValue("port"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.Header.Get("Upgrade") != TunnelProtocol {
		s.writeError(w, r, errs.New(errs.Invalid, "port connect needs \"Upgrade: %s\"", TunnelProtocol))
		return
	}
	up, err := dialLoopback(r, port)
	if err != nil {
		s.writePortClosed(w, r, port, err)
		return
	}
	rc := http.NewResponseController(w)
	conn, brw, err := rc.Hijack()
	if err != nil {
		up.Close()
		s.writeError(w, r, errs.Wrap(errs.Internal, err, "hijack tunnel connection"))
		return
	}
	// The request's context ends when the handler returns; the tunnel
	// lives on until either side closes.
	conn.SetDeadline(time.Time{})
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + TunnelProtocol + "\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		conn.Close()
		up.Close()
		return
	}
	// Bytes the client sent right after its request are already buffered.
	var down io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		down = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	pipe(conn, down, up)
}

// dialLoopback connects to port on the sandbox's loopback: IPv4 first, then
// IPv6 (servers that bind only "::1" exist).
func dialLoopback(r *http.Request, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: portDialTimeout}
	p := strconv.Itoa(port)
	c, err := d.DialContext(r.Context(), "tcp4", net.JoinHostPort("127.0.0.1", p))
	if err == nil {
		return c, nil
	}
	if c6, err6 := d.DialContext(r.Context(), "tcp6", net.JoinHostPort("::1", p)); err6 == nil {
		return c6, nil
	}
	return nil, err
}

func (s *Server) writePortClosed(w http.ResponseWriter, r *http.Request, port int, err error) {
	msg := "nothing is listening on port " + strconv.Itoa(port) + " inside the sandbox"
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
	case errors.As(err, &ne) && ne.Timeout():
		msg = "port " + strconv.Itoa(port) + " inside the sandbox did not accept a connection within " + portDialTimeout.String()
	default:
		msg = "cannot connect to port " + strconv.Itoa(port) + " inside the sandbox"
		s.log.Debug("port dial failed", "port", port, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(StatusPortClosed)
	s.writeJSONBody(w, ErrorBody{Code: errs.Unavailable.Code(), Message: msg})
}

func (s *Server) writeJSONBody(w io.Writer, v ErrorBody) {
	b := []byte(`{"code":` + strconv.Quote(v.Code) + `,"message":` + strconv.Quote(v.Message) + `}`)
	w.Write(b)
}

// pipe copies both ways between the hijacked client connection and the
// port. The end of either direction closes the tunnel: the host never
// half-closes (it closes the whole connection when its HTTP client is done
// with it), and waiting on the other direction after a close could hold
// the goroutines forever on a peer that stays silent.
func pipe(client net.Conn, fromClient io.Reader, up net.Conn) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { client.Close(); up.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(up, fromClient)
		closeBoth()
	}()
	go func() {
		defer wg.Done()
		io.Copy(client, up)
		closeBoth()
	}()
	wg.Wait()
}
