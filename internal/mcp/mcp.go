// Package mcp serves StacyVM to AI agents over the Model Context Protocol:
// tools to create a sandbox, run a command, read, write and list files, and
// destroy the sandbox, each one call to a StacyVM server through apiclient.
// Transports: stdio (one client, the parent process) and streamable HTTP.
package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// Client is the part of apiclient the tools use.
type Client interface {
	Spawn(ctx context.Context, req apiclient.SpawnRequest) (*apiclient.Sandbox, error)
	Destroy(ctx context.Context, id string) error
	Exec(ctx context.Context, id string, req apiclient.ExecRequest) (*apiclient.ExecResult, error)
	ReadFile(ctx context.Context, id, path string) ([]byte, error)
	WriteFile(ctx context.Context, id, path string, content []byte, mode string) error
	ListFiles(ctx context.Context, id, path string) ([]apiclient.FileInfo, error)
}

// Options configure the MCP server.
type Options struct {
	// Version is reported to clients as the server implementation's version.
	Version string
	// DefaultTTL is the TTL of sandboxes created without one ("" takes the
	// StacyVM server's default).
	DefaultTTL string
	// MaxReadBytes caps read_file's answer; bigger files are refused with a
	// hint to use run_command (head/tail). Zero means 1 MiB.
	MaxReadBytes int
}

// NewServer builds the MCP server with StacyVM's tools registered.
func NewServer(c Client, opts Options) *sdk.Server {
	if opts.MaxReadBytes <= 0 {
		opts.MaxReadBytes = 1 << 20
	}
	s := sdk.NewServer(&sdk.Implementation{Name: "stacyvm", Title: "StacyVM sandboxes", Version: opts.Version}, &sdk.ServerOptions{
		Instructions: "Create an isolated Linux sandbox with create_sandbox, run commands in it with run_command, " +
			"move files with write_file/read_file/list_files, and destroy it with destroy_sandbox when done. " +
			"Sandboxes also expire on their own after their TTL.",
	})
	t := &tools{c: c, opts: opts}
	sdk.AddTool(s, &sdk.Tool{Name: "create_sandbox", Description: "Create a sandbox (an isolated Linux container) and return its id. " +
		"Optional: image (default: the server's), ttl like \"30m\", env, metadata."}, t.createSandbox)
	sdk.AddTool(s, &sdk.Tool{Name: "run_command", Description: "Run a command in a sandbox and return its exit code, stdout and stderr. " +
		"By default the command is a shell command line (/bin/sh -c); with mode \"argv\" command and args run directly."}, t.runCommand)
	sdk.AddTool(s, &sdk.Tool{Name: "read_file", Description: "Read a text file (absolute path) from a sandbox."}, t.readFile)
	sdk.AddTool(s, &sdk.Tool{Name: "write_file", Description: "Write a text file (absolute path) in a sandbox, creating parent directories."}, t.writeFile)
	sdk.AddTool(s, &sdk.Tool{Name: "list_files", Description: "List a directory (absolute path, default /) in a sandbox."}, t.listFiles)
	sdk.AddTool(s, &sdk.Tool{Name: "destroy_sandbox", Description: "Destroy a sandbox and everything in it."}, t.destroySandbox)
	return s
}

// ServeStdio serves one MCP client on stdin/stdout until ctx ends or the
// client disconnects.
func ServeStdio(ctx context.Context, s *sdk.Server) error {
	err := s.Run(ctx, &sdk.StdioTransport{})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

type tools struct {
	c    Client
	opts Options
}

// CreateSandboxIn are create_sandbox's arguments.
type CreateSandboxIn struct {
	Image    string            `json:"image,omitempty" jsonschema:"container image, e.g. stacyvm/python; default: the server's"`
	TTL      string            `json:"ttl,omitempty" jsonschema:"time to live, e.g. 30m or 2h"`
	Env      map[string]string `json:"env,omitempty" jsonschema:"environment variables of every command"`
	Metadata map[string]string `json:"metadata,omitempty" jsonschema:"labels to find the sandbox by"`
}

// SandboxOut describes a sandbox.
type SandboxOut struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Image     string `json:"image"`
	Provider  string `json:"provider"`
	ExpiresAt string `json:"expires_at"`
}

func (t *tools) createSandbox(ctx context.Context, _ *sdk.CallToolRequest, in CreateSandboxIn) (*sdk.CallToolResult, SandboxOut, error) {
	ttl := in.TTL
	if ttl == "" {
		ttl = t.opts.DefaultTTL
	}
	if ttl != "" {
		if d, err := time.ParseDuration(ttl); err != nil || d <= 0 {
			return nil, SandboxOut{}, fmt.Errorf("ttl must be a duration like 30m or 2h, got %q", ttl)
		}
	}
	sb, err := t.c.Spawn(ctx, apiclient.SpawnRequest{Image: in.Image, TTL: ttl, Env: in.Env, Metadata: in.Metadata})
	if err != nil {
		return nil, SandboxOut{}, err
	}
	return nil, SandboxOut{ID: sb.ID, State: sb.State, Image: sb.Image, Provider: sb.Provider, ExpiresAt: sb.ExpiresAt.Format(time.RFC3339)}, nil
}

// RunCommandIn are run_command's arguments.
type RunCommandIn struct {
	SandboxID string            `json:"sandbox_id" jsonschema:"the id create_sandbox returned"`
	Command   string            `json:"command" jsonschema:"a shell command line, or the program in argv mode"`
	Args      []string          `json:"args,omitempty" jsonschema:"arguments (argv mode: passed as is; shell mode: quoted and appended)"`
	Mode      string            `json:"mode,omitempty" jsonschema:"shell (default) or argv"`
	Workdir   string            `json:"workdir,omitempty" jsonschema:"working directory"`
	Env       map[string]string `json:"env,omitempty" jsonschema:"extra environment variables"`
	Timeout   string            `json:"timeout,omitempty" jsonschema:"kill the command after this long, e.g. 60s"`
}

// RunCommandOut is a finished command.
type RunCommandOut struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Duration string `json:"duration"`
}

func (t *tools) runCommand(ctx context.Context, _ *sdk.CallToolRequest, in RunCommandIn) (*sdk.CallToolResult, RunCommandOut, error) {
	if err := needID(in.SandboxID); err != nil {
		return nil, RunCommandOut{}, err
	}
	if strings.TrimSpace(in.Command) == "" {
		return nil, RunCommandOut{}, errors.New("command is required")
	}
	if in.Mode != "" && in.Mode != apiclient.ModeShell && in.Mode != apiclient.ModeArgv {
		return nil, RunCommandOut{}, fmt.Errorf("mode must be shell or argv, got %q", in.Mode)
	}
	res, err := t.c.Exec(ctx, in.SandboxID, apiclient.ExecRequest{Command: in.Command, Args: in.Args, Mode: in.Mode,
		Workdir: in.Workdir, Env: in.Env, Timeout: in.Timeout})
	if err != nil {
		return nil, RunCommandOut{}, err
	}
	out := RunCommandOut{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr, Duration: res.Duration}
	// The text content is what most models read: keep it plain.
	text := fmt.Sprintf("exit code %d\n--- stdout\n%s--- stderr\n%s", res.ExitCode, withNewline(res.Stdout), withNewline(res.Stderr))
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, out, nil
}

// FileIn names a file or directory in a sandbox.
type FileIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"the id create_sandbox returned"`
	Path      string `json:"path" jsonschema:"absolute path inside the sandbox"`
}

// ReadFileOut is a file's text.
type ReadFileOut struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

func (t *tools) readFile(ctx context.Context, _ *sdk.CallToolRequest, in FileIn) (*sdk.CallToolResult, ReadFileOut, error) {
	if err := needPath(in.SandboxID, in.Path); err != nil {
		return nil, ReadFileOut{}, err
	}
	b, err := t.c.ReadFile(ctx, in.SandboxID, in.Path)
	if err != nil {
		return nil, ReadFileOut{}, err
	}
	if len(b) > t.opts.MaxReadBytes {
		return nil, ReadFileOut{}, fmt.Errorf("%s is %d bytes, over the %d-byte limit of read_file: use run_command with head, tail or grep", in.Path, len(b), t.opts.MaxReadBytes)
	}
	if !utf8.Valid(b) {
		return nil, ReadFileOut{}, fmt.Errorf("%s is not UTF-8 text (%d bytes): use run_command with base64 or od to inspect it", in.Path, len(b))
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}}, ReadFileOut{Path: in.Path, Content: string(b)}, nil
}

// WriteFileIn are write_file's arguments.
type WriteFileIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"the id create_sandbox returned"`
	Path      string `json:"path" jsonschema:"absolute path inside the sandbox"`
	Content   string `json:"content" jsonschema:"the file's text"`
	Mode      string `json:"mode,omitempty" jsonschema:"permission bits in octal, e.g. 0755"`
}

// StatusOut is a short confirmation.
type StatusOut struct {
	Status string `json:"status"`
}

func (t *tools) writeFile(ctx context.Context, _ *sdk.CallToolRequest, in WriteFileIn) (*sdk.CallToolResult, StatusOut, error) {
	if err := needPath(in.SandboxID, in.Path); err != nil {
		return nil, StatusOut{}, err
	}
	if err := t.c.WriteFile(ctx, in.SandboxID, in.Path, []byte(in.Content), in.Mode); err != nil {
		return nil, StatusOut{}, err
	}
	return nil, StatusOut{Status: fmt.Sprintf("wrote %d bytes to %s", len(in.Content), in.Path)}, nil
}

// ListFilesIn are list_files' arguments.
type ListFilesIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"the id create_sandbox returned"`
	Path      string `json:"path,omitempty" jsonschema:"absolute directory path; default /"`
}

// ListFilesOut is a directory listing.
type ListFilesOut struct {
	Files []apiclient.FileInfo `json:"files"`
}

func (t *tools) listFiles(ctx context.Context, _ *sdk.CallToolRequest, in ListFilesIn) (*sdk.CallToolResult, ListFilesOut, error) {
	if in.Path == "" {
		in.Path = "/"
	}
	if err := needPath(in.SandboxID, in.Path); err != nil {
		return nil, ListFilesOut{}, err
	}
	fis, err := t.c.ListFiles(ctx, in.SandboxID, in.Path)
	if err != nil {
		return nil, ListFilesOut{}, err
	}
	var b strings.Builder
	for _, f := range fis {
		kind := "-"
		if f.IsDir {
			kind = "d"
		}
		fmt.Fprintf(&b, "%s %4s %10d %s\n", kind, f.Mode, f.Size, f.Path)
	}
	if len(fis) == 0 {
		b.WriteString("(empty)\n")
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: b.String()}}}, ListFilesOut{Files: fis}, nil
}

// DestroyIn names a sandbox.
type DestroyIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"the id create_sandbox returned"`
}

func (t *tools) destroySandbox(ctx context.Context, _ *sdk.CallToolRequest, in DestroyIn) (*sdk.CallToolResult, StatusOut, error) {
	if err := needID(in.SandboxID); err != nil {
		return nil, StatusOut{}, err
	}
	if err := t.c.Destroy(ctx, in.SandboxID); err != nil {
		return nil, StatusOut{}, err
	}
	return nil, StatusOut{Status: in.SandboxID + " destroyed"}, nil
}

func needID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("sandbox_id is required (create_sandbox returns one)")
	}
	return nil
}

func needPath(id, path string) error {
	if err := needID(id); err != nil {
		return err
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path must be absolute, got %q", path)
	}
	return nil
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

var _ Client = (*apiclient.Client)(nil)
