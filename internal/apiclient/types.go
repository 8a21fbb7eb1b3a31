package apiclient

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Sandbox is the API's sandbox object (API.md "Sandbox object").
type Sandbox struct {
	ID            string            `json:"id"`
	State         string            `json:"state"`
	Provider      string            `json:"provider"`
	Image         string            `json:"image"`
	MemoryMB      int               `json:"memory_mb"`
	VCPUs         int               `json:"vcpus"`
	OwnerID       string            `json:"owner_id,omitempty"`
	TenantID      string            `json:"tenant_id,omitempty"`
	VMID          string            `json:"vm_id,omitempty"`
	WorkerID      string            `json:"worker_id,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	ExpiresAt     time.Time         `json:"expires_at"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	PreviewDomain string            `json:"preview_domain,omitempty"`
}

// SpawnRequest is the body of POST /sandboxes; zero fields take the server's
// defaults. TTL is a Go duration string ("30m").
type SpawnRequest struct {
	Image    string            `json:"image,omitempty"`
	Provider string            `json:"provider,omitempty"`
	MemoryMB int               `json:"memory_mb,omitempty"`
	VCPUs    int               `json:"vcpus,omitempty"`
	TTL      string            `json:"ttl,omitempty"`
	Template string            `json:"template,omitempty"`
	OwnerID  string            `json:"owner_id,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Network  string            `json:"network,omitempty"` // none, bridge or allowlist
}

// ListOptions filters GET /sandboxes; the zero value lists everything visible.
type ListOptions struct {
	OwnerID string
	State   string
	Limit   int
}

// Exec modes for ExecRequest.Mode.
const (
	ModeShell = "shell" // /bin/sh -c command, args shell-quoted and appended
	ModeArgv  = "argv"  // command and args executed directly
)

// ExecRequest is the body of POST /sandboxes/{id}/exec. Timeout is a Go
// duration string; "" takes the server's default.
type ExecRequest struct {
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Mode    string            `json:"mode,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
	Stream  bool              `json:"stream,omitempty"`
}

// ExecResult is a synchronous exec's outcome; a non-zero ExitCode is not an
// error. Duration is a Go duration string.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Duration string `json:"duration"`
}

// Stream names in ExecChunk.Stream.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamExit   = "exit"
)

// ExecChunk is one NDJSON line of a streamed exec.
type ExecChunk struct {
	Stream   string `json:"stream"`
	Data     string `json:"data"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// Code is set on a terminal error line ({"stream":"error","code":...}).
	Code string `json:"code,omitempty"`
}

// FileInfo describes a file inside a sandbox. Mode is octal digits ("644").
type FileInfo struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	IsDir   bool      `json:"is_dir"`
	ModTime time.Time `json:"mod_time"`
}

// ProviderInfo is one entry of GET /providers.
type ProviderInfo struct {
	Name         string    `json:"name"`
	Healthy      bool      `json:"healthy"`
	Default      bool      `json:"default"`
	LatencyMS    float64   `json:"latency_ms"`
	LastChecked  time.Time `json:"last_checked"`
	Error        string    `json:"error,omitempty"`
	Capabilities []string  `json:"capabilities"`
}

// Health is GET /health. Uptime is kept as text whether the server sends a
// duration string or a number of seconds.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Uptime  string `json:"uptime"`
}

// UnmarshalJSON accepts "uptime" as a string or a number.
func (h *Health) UnmarshalJSON(b []byte) error {
	var raw struct {
		Status  string          `json:"status"`
		Version string          `json:"version"`
		Uptime  json.RawMessage `json:"uptime"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	h.Status, h.Version, h.Uptime = raw.Status, raw.Version, ""
	if len(raw.Uptime) > 0 && string(raw.Uptime) != "null" {
		var s string
		if err := json.Unmarshal(raw.Uptime, &s); err == nil {
			h.Uptime = s
		} else if f, err := strconv.ParseFloat(string(raw.Uptime), 64); err == nil {
			h.Uptime = (time.Duration(f * float64(time.Second))).String()
		} else {
			return fmt.Errorf("health: bad uptime %s", raw.Uptime)
		}
	}
	return nil
}
