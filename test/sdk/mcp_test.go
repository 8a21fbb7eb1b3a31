package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callTool calls a tool and decodes its structured result into out.
func callTool(t *testing.T, ctx context.Context, s *mcp.ClientSession, name string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if out != nil && !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("tools/call %s: structured result %s: %v", name, b, err)
		}
	}
	return res
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// exchange runs the whole tool round trip a model would: initialize (done by
// Connect), tools/list, and tools/call of every tool against real Docker.
func exchange(t *testing.T, ctx context.Context, s *mcp.ClientSession) {
	t.Helper()
	init := s.InitializeResult()
	if init == nil || init.ServerInfo == nil || init.ServerInfo.Name != "stacyvm" {
		t.Fatalf("initialize: server info %+v", init)
	}
	tools, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.InputSchema == nil || tl.Description == "" {
			t.Errorf("tool %s lacks a description or input schema", tl.Name)
		}
	}
	sort.Strings(names)
	want := []string{"create_sandbox", "destroy_sandbox", "list_files", "read_file", "run_command", "write_file"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("tools/list = %v, want %v", names, want)
	}
	t.Logf("initialize: %s %s (protocol %s); tools/list: %v", init.ServerInfo.Name, init.ServerInfo.Version, init.ProtocolVersion, names)

	var sb struct{ ID, State, Image string }
	res := callTool(t, ctx, s, "create_sandbox", map[string]any{"image": "stacyvm/busybox", "ttl": "5m",
		"metadata": map[string]string{"sdk-test": "mcp"}}, &sb)
	if res.IsError || !strings.HasPrefix(sb.ID, "sb-") || sb.State != "running" {
		t.Fatalf("create_sandbox: %s %+v", resultText(res), sb)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			callTool(t, context.WithoutCancel(ctx), s, "destroy_sandbox", map[string]any{"sandbox_id": sb.ID}, nil)
		}
	}()

	var run struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	res = callTool(t, ctx, s, "run_command", map[string]any{"sandbox_id": sb.ID, "command": "echo hi"}, &run)
	if res.IsError || run.ExitCode != 0 || run.Stdout != "hi\n" || !strings.Contains(resultText(res), "exit code 0") {
		t.Fatalf("run_command echo hi: %q %+v", resultText(res), run)
	}
	t.Logf("tools/call run_command {echo hi} -> %q", resultText(res))
	res = callTool(t, ctx, s, "run_command", map[string]any{"sandbox_id": sb.ID, "command": "sh", "args": []string{"-c", "exit 3"}, "mode": "argv"}, &run)
	if res.IsError || run.ExitCode != 3 {
		t.Errorf("run_command exit 3: %q %+v", resultText(res), run)
	}

	res = callTool(t, ctx, s, "write_file", map[string]any{"sandbox_id": sb.ID, "path": "/work/notes.txt", "content": "from mcp\n"}, nil)
	if res.IsError {
		t.Fatalf("write_file: %s", resultText(res))
	}
	res = callTool(t, ctx, s, "read_file", map[string]any{"sandbox_id": sb.ID, "path": "/work/notes.txt"}, nil)
	if res.IsError || resultText(res) != "from mcp\n" {
		t.Errorf("read_file: %q (error %v)", resultText(res), res.IsError)
	}
	res = callTool(t, ctx, s, "list_files", map[string]any{"sandbox_id": sb.ID, "path": "/work"}, nil)
	if res.IsError || !strings.Contains(resultText(res), "/work/notes.txt") {
		t.Errorf("list_files: %q", resultText(res))
	}

	// Errors are tool results the model can read, with the API's code.
	res = callTool(t, ctx, s, "read_file", map[string]any{"sandbox_id": sb.ID, "path": "/work/missing"}, nil)
	if !res.IsError || !strings.Contains(resultText(res), "NOT_FOUND") {
		t.Errorf("read_file of a missing file: error %v %q", res.IsError, resultText(res))
	}
	res = callTool(t, ctx, s, "read_file", map[string]any{"sandbox_id": sb.ID, "path": "relative"}, nil)
	if !res.IsError || !strings.Contains(resultText(res), "absolute") {
		t.Errorf("read_file of a relative path: error %v %q", res.IsError, resultText(res))
	}
	// Arguments are validated against the tool's schema: a wrong type is an
	// error (protocol or tool), never a crash or a call to the server.
	if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "run_command", Arguments: map[string]any{"sandbox_id": 42}}); err == nil && !res.IsError {
		t.Errorf("run_command with a numeric sandbox_id succeeded: %q", resultText(res))
	}

	res = callTool(t, ctx, s, "destroy_sandbox", map[string]any{"sandbox_id": sb.ID}, nil)
	if res.IsError {
		t.Fatalf("destroy_sandbox: %s", resultText(res))
	}
	destroyed = true
	res = callTool(t, ctx, s, "run_command", map[string]any{"sandbox_id": sb.ID, "command": "true"}, nil)
	if !res.IsError || !strings.Contains(resultText(res), "NOT_FOUND") {
		t.Errorf("run_command after destroy: error %v %q", res.IsError, resultText(res))
	}
}

func TestMCP_Stdio(t *testing.T) {
	needLive(t)
	before := sandboxCount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "stacyvm-test", Version: "1"}, nil)
	cmd := exec.Command(live.bin, "mcp", "--server", live.url)
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect (initialize) over stdio: %v", err)
	}
	exchange(t, ctx, session)
	if err := session.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	checkNoLeak(t, before)
}

func TestMCP_StreamableHTTP(t *testing.T) {
	needLive(t)
	before := sandboxCount(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var log syncBuffer
	cmd := exec.Command(live.bin, "mcp", "--server", live.url, "--http", addr)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	endpoint := fmt.Sprintf("http://%s/mcp", addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mcp --http did not listen on %s:\n%s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "stacyvm-test", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{}}, nil)
	if err != nil {
		t.Fatalf("connect (initialize) over streamable HTTP: %v\n%s", err, log.String())
	}
	exchange(t, ctx, session)
	_ = session.Close()
	checkNoLeak(t, before)

	// SIGTERM stops the server at once and cleanly, even with a session whose
	// standalone SSE stream is open and a connection that never sent a
	// request (net/http's Shutdown would wait 5s for it).
	idle, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("second session: %v", err)
	}
	defer idle.Close()
	if _, err := idle.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list on the second session: %v", err)
	}
	unused, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer unused.Close()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("mcp --http did not exit cleanly on SIGTERM: %v\n%s", err, log.String())
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("mcp --http took %v to stop on SIGTERM", took)
		}
		t.Logf("SIGTERM with an open session and an unused connection: exit after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Errorf("mcp --http did not stop within 10s of SIGTERM:\n%s", log.String())
	}
	waited := make(chan error, 1)
	go func() { waited <- idle.Wait() }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Errorf("the open session did not end when the server stopped")
	}
}

func TestMCP_HTTPRefusesNonLoopback(t *testing.T) {
	needLive(t)
	out, err := exec.Command(live.bin, "mcp", "--server", live.url, "--http", "0.0.0.0:0").CombinedOutput()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "loopback") {
		t.Errorf("mcp --http 0.0.0.0:0: err %v, output %q; want exit 2 naming loopback", err, out)
	}
}
