package mcp

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// slowExec is a recorder whose Exec runs until release is closed.
type slowExec struct {
	recorder
	started chan struct{}
	release chan struct{}
}

func (s *slowExec) Exec(ctx context.Context, id string, req apiclient.ExecRequest) (*apiclient.ExecResult, error) {
	close(s.started)
	<-s.release
	return &apiclient.ExecResult{ExitCode: 0, Stdout: "slow\n"}, nil
}

// serveHTTP runs ServeHTTP on a loopback port; stop ends its context.
func serveHTTP(t *testing.T, c Client, grace time.Duration) (endpoint string, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ServeHTTP(ctx, l, NewServer(c, Options{}), grace) }()
	t.Cleanup(cancel)
	return "http://" + l.Addr().String() + "/mcp", cancel, errc
}

// connectHTTP connects a client with the SDK's default reconnect policy: a
// client whose standalone stream ends retries it after a delay, so the
// answer to its running call arrives first.
func connectHTTP(t *testing.T, endpoint string) *sdk.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test"}, nil).
		Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// A tool call running when shutdown begins finishes and its answer reaches
// the client; then the server stops without error.
func TestServeHTTP_ShutdownLetsRunningCallsFinish(t *testing.T) {
	c := &slowExec{started: make(chan struct{}), release: make(chan struct{})}
	endpoint, stop, done := serveHTTP(t, c, 10*time.Second)
	cs := connectHTTP(t, endpoint)
	type answer struct {
		res *sdk.CallToolResult
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "run_command",
			Arguments: map[string]any{"sandbox_id": "sb-1", "command": "sleep 1"}})
		answered <- answer{res, err}
	}()
	<-c.started
	stop()
	select {
	case err := <-done:
		t.Fatalf("ServeHTTP returned %v while a tool call was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	// A new session cannot start while the server drains.
	if _, err := sdk.NewClient(&sdk.Implementation{Name: "late"}, nil).Connect(context.Background(),
		&sdk.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}, nil); err == nil {
		t.Errorf("a new session started during shutdown")
	}
	close(c.release)
	a := <-answered
	if a.err != nil || a.res.IsError || !strings.Contains(text(a.res), "slow") {
		t.Errorf("the running call's answer: %v %+v", a.err, a.res)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP still running 5s after the last call ended")
	}
}

// A tool call still running after the grace period is cut off, and that is
// an error: it is not hidden.
func TestServeHTTP_ShutdownCutsOffCallsAfterGrace(t *testing.T) {
	c := &slowExec{started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(c.release) })
	endpoint, stop, done := serveHTTP(t, c, 300*time.Millisecond)
	cs := connectHTTP(t, endpoint)
	answered := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "run_command",
			Arguments: map[string]any{"sandbox_id": "sb-1", "command": "sleep 1h"}})
		answered <- err
	}()
	<-c.started
	start := time.Now()
	stop()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "1 request(s) still running after 300ms were cut off") {
			t.Errorf("ServeHTTP = %v, want the cut-off call reported", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("ServeHTTP took %v to give up, grace is 300ms", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeHTTP did not give up after its grace period")
	}
	select {
	case err := <-answered:
		if err == nil {
			t.Errorf("the cut-off call got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the cut-off call's client still waits 5s after the server stopped")
	}
}
