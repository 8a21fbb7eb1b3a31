package agent_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestDialPort_EchoesThroughTheTunnel(t *testing.T) {
	a := startAgent(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := a.client.DialPort(ctx, port)
	if err != nil {
		t.Fatalf("DialPort: %v", err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range 3 {
		msg := "ping " + strconv.Itoa(i) + "\n"
		conn.Write([]byte(msg))
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo %d: %q %v, want %q", i, got, err, msg)
		}
	}
}

func TestDialPort_ClosedPortFailsFast(t *testing.T) {
	a := startAgent(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	start := time.Now()
	_, err := a.client.DialPort(context.Background(), port)
	if !errors.Is(err, agent.ErrPortClosed) || !errs.Is(err, errs.Unavailable) {
		t.Fatalf("closed port: %v, want Unavailable wrapping ErrPortClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed port took %v, want well under a second", d)
	}
	for _, p := range []int{0, 70000, -1} {
		if _, err := a.client.DialPort(context.Background(), p); !errs.Is(err, errs.Invalid) {
			t.Errorf("port %d: %v, want Invalid", p, err)
		}
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		ok   bool
	}{{"80", 80, true}, {"65535", 65535, true}, {"0", 0, false}, {"70000", 0, false}, {"abc", 0, false}, {"+80", 0, false}, {"", 0, false}, {"0080", 80, true}} {
		got, err := agent.ParsePort(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
