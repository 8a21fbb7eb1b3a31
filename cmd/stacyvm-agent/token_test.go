package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func upgradeClient(addr, token string) *agent.Client {
	var d net.Dialer
	return agent.NewClient(func(ctx context.Context) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return agent.DialUpgrade(ctx, c, "agent", "/v1/agent", token, nil)
	})
}

func TestAgent_TCPTokenFromEnvIsRequiredAndHiddenFromExecs(t *testing.T) {
	bin := buildAgent(t)
	addr := freePort(t)
	cmd := exec.Command(bin, "--listen", "tcp://"+addr, "--root", t.TempDir())
	cmd.Env = append(os.Environ(), tokenEnv+"=env-secret")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	c := upgradeClient(addr, "env-secret")
	defer c.Close()
	waitPing(t, c, exited)
	var out bytes.Buffer
	res, err := c.Exec(ctxT(t), agent.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo \"[$" + tokenEnv + "]\""}}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.String() != "[]\n" {
		t.Errorf("exec sees %s = %q, %+v, %v; want it unset", tokenEnv, out.String(), res, err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.DialUpgrade(ctxT(t), conn, "agent", "/", "wrong", nil); !errs.Is(err, errs.Unauthorized) {
		t.Errorf("wrong token: %v, want UNAUTHORIZED", err)
	}
	if strings.Contains(logs.String(), "env-secret") {
		t.Errorf("agent log holds the token:\n%s", logs.String())
	}
}

func TestAgent_TCPTokenFromFile(t *testing.T) {
	bin := buildAgent(t)
	addr := freePort(t)
	tf := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tf, []byte("file-secret\n"), 0o600)
	_, exited, _ := startBinary(t, []string{bin, "--listen", "tcp://" + addr, "--root", t.TempDir(), "--token-file", tf})
	c := upgradeClient(addr, "file-secret")
	defer c.Close()
	waitPing(t, c, exited)
}

func TestGuardListener(t *testing.T) {
	for _, tc := range []struct {
		name, addr, token string
		wantErr           bool
		wantWrapped       bool
	}{
		{"loopback without token stays plain", "tcp://127.0.0.1:0", "", false, false},
		{"localhost without token stays plain", "tcp://localhost:0", "", false, false},
		{"all interfaces without token is refused", "tcp://0.0.0.0:0", "", true, false},
		{"empty host without token is refused", "tcp://:0", "", true, false},
		{"all interfaces with token is guarded", "tcp://0.0.0.0:0", "t", false, true},
		{"loopback with token is guarded", "tcp://127.0.0.1:0", "t", false, true},
		{"unix with token is refused", "unix:///x", "t", true, false},
		{"unix without token is unchanged", "unix:///x", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			got, err := guardListener(l, tc.addr, tc.token)
			if (err != nil) != tc.wantErr {
				t.Fatalf("guardListener(%s, token %q) error = %v, want error %v", tc.addr, tc.token, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer got.Close()
			if wrapped := got != l; wrapped != tc.wantWrapped {
				t.Errorf("wrapped = %v, want %v", wrapped, tc.wantWrapped)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("  abc \nignored\n"), 0o600)
	for _, tc := range []struct {
		o       options
		want    string
		wantErr bool
	}{
		{options{}, "", false},
		{options{envToken: "e"}, "e", false},
		{options{tokenFile: good, envToken: "e"}, "abc", false},
		{options{tokenFile: empty}, "", true},
		{options{tokenFile: filepath.Join(dir, "missing")}, "", true},
	} {
		got, err := readToken(tc.o)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("readToken(%+v) = %q, %v; want %q, error %v", tc.o, got, err, tc.want, tc.wantErr)
		}
	}
}
