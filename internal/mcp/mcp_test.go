package mcp

import (
	"context"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// recorder is a Client that records calls and fails none; the live
// exchange against real Docker is in test/sdk.
type recorder struct {
	calls []string
	file  []byte
}

func (r *recorder) Spawn(_ context.Context, req apiclient.SpawnRequest) (*apiclient.Sandbox, error) {
	r.calls = append(r.calls, "spawn ttl="+req.TTL)
	return &apiclient.Sandbox{ID: "sb-0123456789ab", State: "running"}, nil
}
func (r *recorder) Destroy(_ context.Context, id string) error {
	r.calls = append(r.calls, "destroy "+id)
	return nil
}
func (r *recorder) Exec(_ context.Context, id string, req apiclient.ExecRequest) (*apiclient.ExecResult, error) {
	r.calls = append(r.calls, "exec "+req.Command)
	return &apiclient.ExecResult{ExitCode: 0, Stdout: "ok"}, nil
}
func (r *recorder) ReadFile(context.Context, string, string) ([]byte, error) {
	r.calls = append(r.calls, "read")
	return r.file, nil
}
func (r *recorder) WriteFile(context.Context, string, string, []byte, string) error {
	r.calls = append(r.calls, "write")
	return nil
}
func (r *recorder) ListFiles(context.Context, string, string) ([]apiclient.FileInfo, error) {
	r.calls = append(r.calls, "list")
	return nil, nil
}

func connect(t *testing.T, c Client, opts Options) *sdk.ClientSession {
	t.Helper()
	ctx := context.Background()
	st, ct := sdk.NewInMemoryTransports()
	if _, err := NewServer(c, opts).Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func text(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestTools_BadInputIsAToolErrorAndNeverReachesTheServer(t *testing.T) {
	rec := &recorder{}
	cs := connect(t, rec, Options{})
	tests := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"run_command", map[string]any{"sandbox_id": "", "command": "ls"}, "sandbox_id is required"},
		{"run_command", map[string]any{"sandbox_id": "sb-1", "command": "  "}, "command is required"},
		{"run_command", map[string]any{"sandbox_id": "sb-1", "command": "ls", "mode": "pty"}, "mode must be shell or argv"},
		{"read_file", map[string]any{"sandbox_id": "sb-1", "path": "etc/passwd"}, "path must be absolute"},
		{"write_file", map[string]any{"sandbox_id": "sb-1", "path": "x", "content": "y"}, "path must be absolute"},
		{"list_files", map[string]any{"sandbox_id": "sb-1", "path": "rel"}, "path must be absolute"},
		{"destroy_sandbox", map[string]any{"sandbox_id": " "}, "sandbox_id is required"},
		{"create_sandbox", map[string]any{"ttl": "forever"}, "ttl must be a duration"},
	}
	for _, tt := range tests {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tt.tool, Arguments: tt.args})
		if err != nil {
			t.Errorf("%s %v: protocol error %v, want a tool error", tt.tool, tt.args, err)
			continue
		}
		if !res.IsError || !strings.Contains(text(res), tt.want) {
			t.Errorf("%s %v: isError %v text %q, want an error with %q", tt.tool, tt.args, res.IsError, text(res), tt.want)
		}
	}
	if len(rec.calls) != 0 {
		t.Errorf("bad input reached the server: %v", rec.calls)
	}
}

func TestTools_DefaultTTLAndReadLimits(t *testing.T) {
	rec := &recorder{file: []byte("0123456789")}
	cs := connect(t, rec, Options{DefaultTTL: "15m", MaxReadBytes: 4})
	ctx := context.Background()
	if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "create_sandbox", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || rec.calls[0] != "spawn ttl=15m" {
		t.Errorf("calls = %v, want spawn with the default ttl", rec.calls)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"sandbox_id": "sb-1", "path": "/big"}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "over the 4-byte limit") {
		t.Errorf("read_file over the limit: %v %q", err, text(res))
	}
	rec.file = []byte{0xff, 0xfe}
	cs2 := connect(t, rec, Options{})
	res, err = cs2.CallTool(ctx, &sdk.CallToolParams{Name: "read_file", Arguments: map[string]any{"sandbox_id": "sb-1", "path": "/bin"}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "not UTF-8") {
		t.Errorf("read_file of binary: %v %q", err, text(res))
	}
}
