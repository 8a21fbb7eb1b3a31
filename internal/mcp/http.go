package mcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// ShutdownGrace is how long ServeHTTP lets tool calls that are running when
// its context ends finish.
const ShutdownGrace = 5 * time.Second

// httpHandler serves MCP's streamable HTTP transport for s.
func httpHandler(s *sdk.Server) http.Handler {
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil)
}

// ServeHTTP serves s over streamable HTTP on l (at /mcp and /) until ctx
// ends, then shuts down and returns nil once every request has ended.
//
// http.Server.Shutdown alone would not end promptly: a client's standalone
// SSE stream (a GET that lasts as long as the session) never ends by itself,
// and Shutdown counts a connection on which no request has arrived yet (an
// HTTP client's spare connection) as busy for 5s. So on shutdown, ServeHTTP
// answers new requests with 503, closes connections that carry no request,
// lets running requests (tool calls) finish and deliver their answers, then
// closes every MCP session, which ends their streams. Requests still running
// after grace are cut off, and that is an error.
func ServeHTTP(ctx context.Context, l net.Listener, s *sdk.Server, grace time.Duration) error {
	h := &drainHandler{next: httpHandler(s), idle: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	mux.Handle("/", h)
	cs := &connSet{state: map[net.Conn]http.ConnState{}}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: cs.track}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	idle := h.drain()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }() // closes l and idle connections
	cs.closeUnused()
	select {
	case <-idle:
	case <-sctx.Done():
	}
	for ss := range s.Sessions() {
		// Closing a session drops the answers of its running calls, so it
		// waits for them above; it then ends the session's streams.
		go ss.Close()
	}
	err := <-shut
	if err != nil {
		running := h.running()
		_ = srv.Close()
		err = fmt.Errorf("shutdown: %d request(s) still running after %v were cut off: %w", running, grace, err)
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// drainHandler counts the requests it serves other than GETs (which are SSE
// streams that last as long as their session), and once draining answers
// new requests with 503, so no session opens after ServeHTTP closed them all.
type drainHandler struct {
	next     http.Handler
	mu       sync.Mutex
	draining bool
	calls    int
	idle     chan struct{} // closed once draining and calls is 0
}

func (h *drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.draining {
		h.mu.Unlock()
		w.Header().Set("Connection", "close")
		http.Error(w, "the MCP server is shutting down", http.StatusServiceUnavailable)
		return
	}
	counted := r.Method != http.MethodGet
	if counted {
		h.calls++
	}
	h.mu.Unlock()
	if counted {
		defer h.finished()
	}
	h.next.ServeHTTP(w, r)
}

func (h *drainHandler) finished() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls--
	if h.draining && h.calls == 0 {
		close(h.idle)
	}
}

// drain refuses new requests from now on and returns a channel closed once
// the counted requests have ended.
func (h *drainHandler) drain() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.draining {
		h.draining = true
		if h.calls == 0 {
			close(h.idle)
		}
	}
	return h.idle
}

func (h *drainHandler) running() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// connSet tracks the server's connections by state.
type connSet struct {
	mu      sync.Mutex
	state   map[net.Conn]http.ConnState
	closing bool
}

func (c *connSet) track(nc net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateHijacked, http.StateClosed:
		delete(c.state, nc)
	case http.StateNew:
		if c.closing {
			_ = nc.Close()
			return
		}
		c.state[nc] = st
	default:
		c.state[nc] = st
	}
}

// closeUnused closes the connections on which no request has arrived yet,
// now and from now on: Shutdown would wait 5s for each.
func (c *connSet) closeUnused() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	for nc, st := range c.state {
		if st == http.StateNew {
			_ = nc.Close()
		}
	}
}
