package agent

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// serveTokenAgent serves a real agent behind a TokenListener on loopback.
func serveTokenAgent(t *testing.T, token string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := TokenListener(l, token)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, tl) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		tl.(*tokenListener).wg.Wait()
	})
	return l.Addr().String()
}

func tokenClient(addr, token string) *Client {
	var d net.Dialer
	return NewClient(func(ctx context.Context) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return DialUpgrade(ctx, c, "agent", "/v1/agent", token, nil)
	})
}

func TestTokenListener_RightTokenServesAgentProtocol(t *testing.T) {
	addr := serveTokenAgent(t, "s3cret")
	c := tokenClient(addr, "s3cret")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if info, err := c.Ping(ctx); err != nil || info.ProtocolVersion != ProtocolVersion {
		t.Fatalf("Ping = %+v, %v; want protocol %d", info, err, ProtocolVersion)
	}
	var out strings.Builder
	res, err := c.Exec(ctx, ExecRequest{Argv: []string{"/bin/sh", "-c", "echo hi"}}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
		t.Errorf("Exec = %q, %+v, %v; want %q", out.String(), res, err, "hi\n")
	}
}

func TestTokenListener_RefusesWrongMissingTokenAndPlainHTTP(t *testing.T) {
	addr := serveTokenAgent(t, "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tok := range []string{"wrong", "", "s3cret-longer", "s3cre"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DialUpgrade(ctx, conn, "agent", "/v1/agent", tok, nil)
		if got := errs.ClassOf(err); got != errs.Unauthorized {
			t.Errorf("token %q: DialUpgrade error class = %v (%v), want UNAUTHORIZED", tok, got, err)
		}
		// Through a Client the call fails too (as unreachable).
		c := tokenClient(addr, tok)
		if _, err := c.Ping(ctx); err == nil {
			t.Errorf("token %q: Ping succeeded, want an error", tok)
		}
		c.Close()
	}
	// A plain agent request (no upgrade) never reaches the agent.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /v1/ping HTTP/1.1\r\nHost: agent\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET /v1/ping = %v, %v; want 400", resp, err)
	}
}

func TestTokenListener_SilentClientDoesNotBlockOthers(t *testing.T) {
	addr := serveTokenAgent(t, "s3cret")
	silent, err := net.Dial("tcp", addr) // never sends its handshake
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c := tokenClient(addr, "s3cret")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping while another client stalls its handshake: %v", err)
	}
}

func TestTokenListener_EmptyTokenIsInvalid(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := TokenListener(l, ""); !errs.Is(err, errs.Invalid) {
		t.Errorf("TokenListener(empty) = %v, want INVALID", err)
	}
}

func TestDialUpgrade_ClassifiesProxyAnswers(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   errs.Class
	}{
		{502, "<html>bad gateway</html>", errs.Unavailable},
		{404, "not found", errs.NotFound},
		{401, "", errs.Unauthorized},
		{401, `{"code":"UNAUTHORIZED","message":"missing or wrong agent token"}`, errs.Unauthorized},
	} {
		a, b := net.Pipe()
		go func() {
			br := bufio.NewReader(b)
			http.ReadRequest(br)
			io.WriteString(b, "HTTP/1.1 "+strconv.Itoa(tc.status)+" x\r\nContent-Length: "+strconv.Itoa(len(tc.body))+"\r\n\r\n"+tc.body)
			b.Close()
		}()
		_, err := DialUpgrade(context.Background(), a, "h", "/", "t", nil)
		if got := errs.ClassOf(err); got != tc.want {
			t.Errorf("HTTP %d %q: class %v (%v), want %v", tc.status, tc.body, got, err, tc.want)
		}
	}
}
