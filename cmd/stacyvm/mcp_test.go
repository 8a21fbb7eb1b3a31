package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// lockedBuffer is a bytes.Buffer safe to write from the CLI's goroutine
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mcpHTTP is `stacyvm mcp --http 127.0.0.1:0` running in-process; stop
// cancels its context, as SIGTERM does to the real binary.
type mcpHTTP struct {
	endpoint string
	addr     string
	stop     context.CancelFunc
	code     chan int
	stderr   *lockedBuffer
}

var servingRE = regexp.MustCompile(`serving streamable HTTP on (http://(\S+)/mcp)`)

func startMCPHTTP(t *testing.T) *mcpHTTP {
	t.Helper()
	api := httptest.NewServer(&fakeServer{})
	t.Cleanup(api.Close)
	ctx, cancel := context.WithCancel(context.Background())
	m := &mcpHTTP{stop: cancel, code: make(chan int, 1), stderr: &lockedBuffer{}}
	e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: m.stderr,
		build: buildInfo{Version: "v9.9.9"}}
	go func() { m.code <- run(ctx, []string{"--server", api.URL, "mcp", "--http", "127.0.0.1:0"}, e) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.code:
		case <-time.After(10 * time.Second):
			t.Errorf("mcp --http still running 10s after its context ended")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if sm := servingRE.FindStringSubmatch(m.stderr.String()); sm != nil {
			m.endpoint, m.addr = sm[1], sm[2]
			return m
		}
		select {
		case code := <-m.code:
			m.code <- code
			t.Fatalf("mcp --http exited with %d before serving: %s", code, m.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mcp --http did not start: %s", m.stderr.String())
		}
	}
}

// stopWithin ends the server and wants exit 0 within d, with nothing but the
// banner on stderr.
func (m *mcpHTTP) stopWithin(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	m.stop()
	select {
	case code := <-m.code:
		m.code <- code
		took := time.Since(start)
		t.Logf("stopped in %v", took.Round(time.Millisecond))
		if code != 0 || strings.Contains(m.stderr.String(), "error") {
			t.Errorf("mcp --http stopped with exit %d after %v: %s", code, took, m.stderr.String())
		}
		if took > d {
			t.Errorf("mcp --http took %v to stop, want at most %v", took, d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("mcp --http did not stop within 10s: %s", m.stderr.String())
	}
}

func connectMCP(t *testing.T, endpoint string) *sdk.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).
		Connect(ctx, &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 6 {
		t.Fatalf("tools/list: %v %v", tools, err)
	}
	return cs
}

// A client that keeps its session (and so its standalone SSE stream, a GET
// that never ends by itself) open must not hold the server up on SIGTERM:
// the server closes the session and exits 0 at once.
func TestMCPHTTP_StopWithOpenSession(t *testing.T) {
	m := startMCPHTTP(t)
	cs := connectMCP(t, m.endpoint)
	m.stopWithin(t, 2*time.Second)
	// The client learns that its session is gone.
	waited := make(chan error, 1)
	go func() { waited <- cs.Wait() }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Errorf("client session still alive 5s after the server stopped")
	}
}

// A connection that never sends a request (an HTTP client dials a spare one
// when a request is cancelled while dialing; net/http's Shutdown treats such
// a connection as busy for 5s) must not hold the server up either.
func TestMCPHTTP_StopWithUnusedConnection(t *testing.T) {
	m := startMCPHTTP(t)
	cs := connectMCP(t, m.endpoint)
	if err := cs.Close(); err != nil {
		t.Fatalf("close session: %v", err)
	}
	conn, err := net.Dial("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(100 * time.Millisecond) // let the server accept it
	m.stopWithin(t, 2*time.Second)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the unused connection is still open after the server stopped: %d %v", n, err)
	}
}
