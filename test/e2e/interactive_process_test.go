package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// Background processes over REST (docs/interactive.md), long idle streams,
// and the interactive features on gVisor and PRoot.

type processJSON struct {
	ID          string `json:"id"`
	PID         int    `json:"pid"`
	Running     bool   `json:"running"`
	ExitCode    *int   `json:"exit_code"`
	OutputStart int64  `json:"output_start"`
	OutputEnd   int64  `json:"output_end"`
}

type outLine struct {
	Stream   string `json:"stream"`
	Data     string `json:"data"`
	Offset   int64  `json:"offset"`
	ExitCode *int   `json:"exit_code"`
	Code     string `json:"code"`
}

// readLines reads an NDJSON output stream; stop (when set) ends it early.
func readLines(t *testing.T, ctx context.Context, url string, stop func(outLine) bool) (string, *int) {
	t.Helper()
	out, exit, err := readLinesErr(ctx, url, stop)
	if err != nil {
		t.Fatal(err)
	}
	return out, exit
}

// readLinesErr is readLines for goroutines other than the test's.
func readLinesErr(ctx context.Context, url string, stop func(outLine) bool) (string, *int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		return "", nil, fmt.Errorf("GET %s: %d %s %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var l outLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return "", nil, fmt.Errorf("bad line %q: %v", sc.Text(), err)
		}
		switch l.Stream {
		case "exit":
			return sb.String(), l.ExitCode, nil
		case "error":
			return "", nil, fmt.Errorf("error line %+v", l)
		}
		sb.WriteString(l.Data)
		if stop != nil && stop(l) {
			return sb.String(), nil, nil
		}
	}
	return sb.String(), nil, nil
}

// TestInteractive_BackgroundProcessReattach starts a detached process,
// drops the client that followed it, and reads the whole output back from
// offset 0 and from the middle once it is done.
func TestInteractive_BackgroundProcessReattach(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "ttl": "10m"})
	base := "/sandboxes/" + sb.ID + "/processes"
	var p processJSON
	code, data := s.call("POST", base, map[string]any{
		"command": "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; exit 5"}, &p)
	if code != 201 || !p.Running || !strings.HasPrefix(p.ID, "proc-") {
		t.Fatalf("start: %d %s", code, data)
	}
	// A follower that leaves after a few lines.
	ctx, cancel := context.WithCancel(context.Background())
	got, _ := readLines(t, ctx, s.url+base+"/"+p.ID+"/output?follow=true", func(l outLine) bool {
		return strings.Contains(l.Data, "line-5\n")
	})
	cancel()
	if !strings.HasPrefix(got, "line-0\n") {
		t.Fatalf("first follower got %q", got)
	}
	var mid processJSON
	s.call("GET", base+"/"+p.ID, nil, &mid)
	if !mid.Running {
		t.Fatalf("process stopped when its client left: %+v", mid)
	}
	// Reattach from 0 and follow to the end.
	full, exit := readLines(t, context.Background(), s.url+base+"/"+p.ID+"/output?offset=0&follow=true", nil)
	var want strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&want, "line-%d\n", i)
	}
	if full != want.String() || exit == nil || *exit != 5 {
		t.Fatalf("reattached output: %d bytes (want %d), exit %v (want 5)", len(full), want.Len(), exit)
	}
	off := len(full) / 2
	tail, exit2 := readLines(t, context.Background(), fmt.Sprintf("%s%s/%s/output?offset=%d", s.url, base, p.ID, off), nil)
	if tail != full[off:] || exit2 == nil {
		t.Errorf("from offset %d: %d bytes, want %d", off, len(tail), len(full)-off)
	}
	// Raw bytes from the same offset: offset header and exit-code trailer.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s/%s/output?offset=%d", s.url, base, p.ID, off), nil)
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(raw) != full[off:] || resp.Header.Get("X-Output-Offset") != strconv.Itoa(off) || resp.Trailer.Get("X-Exit-Code") != "5" {
		t.Errorf("raw: %d bytes offset %q exit %q, want %d bytes, %d, 5", len(raw), resp.Header.Get("X-Output-Offset"), resp.Trailer.Get("X-Exit-Code"), len(full)-off, off)
	}
	var end processJSON
	s.call("GET", base+"/"+p.ID, nil, &end)
	if end.Running || end.ExitCode == nil || *end.ExitCode != 5 || end.OutputEnd != int64(len(full)) {
		t.Errorf("final state %+v, want exited 5 with %d bytes", end, len(full))
	}
}

// TestInteractive_ProcessOutlivesClientsStdinSignalKill covers the control
// routes and a process that keeps running with nobody connected.
func TestInteractive_ProcessOutlivesClientsStdinSignalKill(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "ttl": "10m"})
	base := "/sandboxes/" + sb.ID + "/processes"

	var sleeper processJSON
	if code, data := s.call("POST", base, map[string]any{"command": "sleep 600"}, &sleeper); code != 201 {
		t.Fatalf("start: %d %s", code, data)
	}
	var cat processJSON
	if code, data := s.call("POST", base, map[string]any{"command": "cat", "stdin": true}, &cat); code != 201 {
		t.Fatalf("start cat: %d %s", code, data)
	}
	time.Sleep(2 * time.Second) // nobody is connected meanwhile
	var got processJSON
	s.call("GET", base+"/"+sleeper.ID, nil, &got)
	if !got.Running {
		t.Fatalf("sleep 600 not running 2 s later with no client: %+v", got)
	}
	if r := s.exec(sb.ID, "kill -0 "+strconv.Itoa(sleeper.PID)+" && echo yes"); r.Stdout != "yes\n" {
		t.Fatalf("pid %d not alive inside the sandbox: %+v", sleeper.PID, r)
	}

	if code, data := s.call("POST", base+"/"+cat.ID+"/stdin", map[string]any{"data": "hello\n"}, nil); code != 200 {
		t.Fatalf("stdin: %d %s", code, data)
	}
	req, _ := http.NewRequest("POST", s.url+base+"/"+cat.ID+"/stdin", strings.NewReader("raw-bytes\n"))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("raw stdin: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, _ := readLines(t, ctx, s.url+base+"/"+cat.ID+"/output?follow=true", func(l outLine) bool { return strings.Contains(l.Data, "raw-bytes") })
	cancel()
	if out != "hello\nraw-bytes\n" {
		t.Errorf("cat echoed %q", out)
	}
	if code, data := s.call("POST", base+"/"+cat.ID+"/signal", map[string]any{"signal": "SIGTERM"}, nil); code != 200 {
		t.Fatalf("signal: %d %s", code, data)
	}
	_, exit := readLines(t, context.Background(), s.url+base+"/"+cat.ID+"/output?follow=true", nil)
	if exit == nil || *exit != 143 {
		t.Errorf("cat after SIGTERM: exit %v, want 143", exit)
	}

	var killed processJSON
	if code, data := s.call("DELETE", base+"/"+sleeper.ID, nil, &killed); code != 200 || killed.Running || killed.ExitCode == nil || *killed.ExitCode != 137 {
		t.Fatalf("kill: %d %s", code, data)
	}
	var list []processJSON
	if code, _ := s.call("GET", base, nil, &list); code != 200 || len(list) != 2 {
		t.Errorf("list: %d %+v, want both processes", code, list)
	}

	// Bad input: unknown ids are 404, bad values 400, a finished process 409.
	for _, c := range []struct{ method, path string }{
		{"GET", base + "/proc-9999"}, {"DELETE", base + "/proc-9999"}, {"GET", base + "/proc-9999/output"},
		{"POST", base + "/proc-9999/signal"}, {"POST", base + "/proc-9999/stdin"}, {"GET", base + "/nonsense%20id"},
		{"GET", "/sandboxes/sb-000000000000/processes"},
	} {
		body := any(nil)
		if c.method == "POST" {
			body = map[string]any{"signal": "SIGTERM", "data": "x"}
		}
		code, data := s.call(c.method, c.path, body, nil)
		wantError(t, c.method+" "+c.path, code, data, 404, "NOT_FOUND")
	}
	code, data := s.call("POST", base+"/"+sleeper.ID+"/signal", map[string]any{"signal": "SIGNOPE"}, nil)
	wantError(t, "bad signal", code, data, 400, "BAD_REQUEST")
	code, data = s.call("GET", base+"/"+sleeper.ID+"/output?offset=-3", nil, nil)
	wantError(t, "negative offset", code, data, 400, "BAD_REQUEST")
	code, data = s.call("GET", base+"/"+sleeper.ID+"/output?offset=99999999", nil, nil)
	wantError(t, "offset past the end", code, data, 400, "BAD_REQUEST")
	code, data = s.call("POST", base, map[string]any{"command": ""}, nil)
	wantError(t, "empty command", code, data, 400, "BAD_REQUEST")
	code, data = s.call("POST", base, map[string]any{"command": "true", "cols": -1}, nil)
	wantError(t, "negative cols", code, data, 400, "BAD_REQUEST")
	code, data = s.call("POST", base+"/"+sleeper.ID+"/signal", map[string]any{"signal": "SIGTERM"}, nil)
	wantError(t, "signal an exited process", code, data, 409, "CONFLICT")
	code, data = s.call("POST", base+"/"+sleeper.ID+"/resize", map[string]any{"cols": 80, "rows": 24}, nil)
	wantError(t, "resize without a tty", code, data, 409, "CONFLICT")
}

// wsDial opens a raw WebSocket to the exec route.
// TestInteractive_LongIdleSessionsSurvive keeps a terminal and an output
// follower idle for longer than two ping intervals and the server's idle
// timeout for keep-alive connections would allow a plain request, then
// checks both still work. (An hour is the same code path: no timer other
// than the pings is involved.)
func TestInteractive_LongIdleSessionsSurvive(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 70 s")
	}
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "ttl": "10m"})
	var p processJSON
	if code, data := s.call("POST", "/sandboxes/"+sb.ID+"/processes", map[string]any{"command": "sleep 70; echo woke; exit 9"}, &p); code != 201 {
		t.Fatalf("start: %d %s", code, data)
	}
	type result struct {
		out  string
		exit *int
		err  error
	}
	followed := make(chan result, 1)
	go func() {
		out, exit, err := readLinesErr(context.Background(), s.url+"/sandboxes/"+sb.ID+"/processes/"+p.ID+"/output?follow=true", nil)
		followed <- result{out, exit, err}
	}()
	w := openTerm(t, s, sb.ID, apiclient.ExecWSRequest{Command: "/bin/sh", Mode: "argv", TTY: true})
	w.send("echo one-$((1+1))\n")
	n := w.waitFor(0, "one-2", 10*time.Second)
	// A client that vanished without closing (it never reads again, so it
	// never answers a ping): its session must be found dead and killed.
	dead := deadWSClient(t, s, sb.ID, `{"command":"sleep 303"}`)
	defer dead.Close()
	waitSleeps(t, s, sb.ID, "[s]leep 303", "1", 10*time.Second)
	time.Sleep(75 * time.Second)
	w.send("echo two-$((1+2))\n")
	w.waitFor(n, "two-3", 10*time.Second)
	waitSleeps(t, s, sb.ID, "[s]leep 303", "0", 5*time.Second)
	select {
	case r := <-followed:
		if r.err != nil || r.out != "woke\n" || r.exit == nil || *r.exit != 9 {
			t.Errorf("follower after 70 s idle: %q exit %v err %v, want woke and 9", r.out, r.exit, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Error("follower did not finish")
	}
	w.send("exit\n")
	w.waitExit(10 * time.Second)
}

// TestInteractive_OtherProviders runs a terminal session and a re-attached
// background process on gVisor, PRoot and the QEMU microVM: the same agent
// code path as Docker runc, so it must behave the same.
func TestInteractive_OtherProviders(t *testing.T) {
	for _, p := range []struct{ name, env string }{
		{"gvisor", "STACYVM_PROVIDERS_GVISOR_ENABLED=true"},
		{"proot", "STACYVM_PROVIDERS_PROOT_ENABLED=true"},
		{"vm", "STACYVM_PROVIDERS_VM_ENABLED=true"},
	} {
		t.Run(p.name, func(t *testing.T) {
			s := startServer(t, "", p.env)
			var sb sandboxJSON
			code, data := s.call("POST", "/sandboxes", map[string]any{"image": "stacyvm/busybox", "provider": p.name, "ttl": "10m"}, &sb)
			if code != 201 {
				t.Skipf("provider %s cannot spawn here: %d %s", p.name, code, data)
			}
			w := openTerm(t, s, sb.ID, apiclient.ExecWSRequest{Command: "/bin/sh", Mode: "argv", TTY: true, Cols: 80, Rows: 24})
			w.send("echo hi-$((40+2)); tty\n")
			n := w.waitFor(0, "hi-42", 15*time.Second)
			n = w.waitFor(n, "/dev/pts/", 5*time.Second)
			if err := w.x.Resize(context.Background(), 100, 31); err != nil {
				t.Fatal(err)
			}
			w.send("stty size\n")
			n = w.waitFor(n, "31 100", 5*time.Second)
			w.send("sleep 60; echo after\n")
			time.Sleep(300 * time.Millisecond)
			w.x.Signal(context.Background(), "SIGINT")
			w.send("echo alive-$((2+3))\n")
			w.waitFor(n, "alive-5", 5*time.Second)
			w.send("exit 4\n")
			if code := w.waitExit(10 * time.Second); code != 4 {
				t.Errorf("exit code %d, want 4", code)
			}

			base := "/sandboxes/" + sb.ID + "/processes"
			var proc processJSON
			if code, data := s.call("POST", base, map[string]any{"command": "for i in $(seq 1 100); do echo n-$i; done; sleep 1; exit 2"}, &proc); code != 201 {
				t.Fatalf("start: %d %s", code, data)
			}
			full, exit := readLines(t, context.Background(), s.url+base+"/"+proc.ID+"/output?follow=true", nil)
			if !strings.HasPrefix(full, "n-1\n") || !strings.HasSuffix(full, "n-100\n") || exit == nil || *exit != 2 {
				t.Fatalf("output %d bytes, exit %v", len(full), exit)
			}
			tail, _ := readLines(t, context.Background(), fmt.Sprintf("%s%s/%s/output?offset=%d", s.url, base, proc.ID, len(full)/2), nil)
			if tail != full[len(full)/2:] {
				t.Errorf("from the middle: %d bytes, want %d", len(tail), len(full)-len(full)/2)
			}

			// Closing a socket kills the session's processes here too.
			k := openTerm(t, s, sb.ID, apiclient.ExecWSRequest{Command: "sleep 301 & echo started; sleep 302"})
			k.waitFor(0, "started", 15*time.Second)
			k.x.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				r := s.exec(sb.ID, "ps -o args | grep -c '[s]leep 30[12]'")
				if strings.TrimSpace(r.Stdout) == "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after close: %q sleeps still running, want 0", r.Stdout)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// waitSleeps waits until `ps | grep -c pattern` in the sandbox prints want.
func waitSleeps(t *testing.T, s *server, id, pattern, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := s.exec(id, "ps -o args | grep -c '"+pattern+"'")
		if strings.TrimSpace(r.Stdout) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: %q processes, want %s", pattern, strings.TrimSpace(r.Stdout), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deadWSClient opens a WebSocket exec by hand, sends the start message and
// then never reads again, like a client whose network went away.
func deadWSClient(t *testing.T, s *server, id, start string) net.Conn {
	t.Helper()
	u, _ := url.Parse(s.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(conn, "GET %s/sandboxes/%s/exec/ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", u.Path, id, u.Host, key)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// One masked text frame (client frames must be masked).
	payload := []byte(start)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	return conn
}
