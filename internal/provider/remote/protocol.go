package remote

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// The worker protocol (docs/worker-protocol.md). Both ends import these
// types: internal/worker serves them, this package's Provider calls them.

// ProtocolVersion is the worker protocol's version, reported by /v1/info.
// A client refuses a worker with another major version.
const ProtocolVersion = 1

// Routes of the worker protocol, relative to the worker's base URL.
const (
	PathInfo      = "/v1/info"
	PathHealth    = "/v1/health"
	PathSandboxes = "/v1/sandboxes"
)

// RelayProtocol is the Upgrade token of the agent relay: after the 101
// answer the connection carries one agent connection's bytes, both ways.
const RelayProtocol = "stacyvm-agent-relay"

// Info describes a worker: its protocol version and the one provider it
// exposes.
type Info struct {
	ProtocolVersion int                   `json:"protocol_version"`
	Version         string                `json:"version,omitempty"` // the worker binary's version
	Provider        string                `json:"provider"`          // the local provider's name, e.g. "docker"
	Capabilities    provider.Capabilities `json:"capabilities"`
}

// SpecJSON is provider.Spec on the wire.
type SpecJSON struct {
	SandboxID string            `json:"sandbox_id"`
	Image     string            `json:"image"`
	MemoryMB  int               `json:"memory_mb,omitempty"`
	VCPUs     float64           `json:"vcpus,omitempty"`
	PidsLimit int64             `json:"pids_limit,omitempty"`
	Network   string            `json:"network,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// SpecToJSON converts a Spec for the wire.
func SpecToJSON(s provider.Spec) SpecJSON {
	return SpecJSON{SandboxID: s.SandboxID, Image: s.Image, MemoryMB: s.MemoryMB, VCPUs: s.VCPUs,
		PidsLimit: s.PidsLimit, Network: s.Network, Env: s.Env, Labels: s.Labels}
}

// Spec converts back.
func (s SpecJSON) Spec() provider.Spec {
	return provider.Spec{SandboxID: s.SandboxID, Image: s.Image, MemoryMB: s.MemoryMB, VCPUs: s.VCPUs,
		PidsLimit: s.PidsLimit, Network: s.Network, Env: s.Env, Labels: s.Labels}
}

// StatusJSON is provider.Status on the wire.
type StatusJSON struct {
	State     provider.RuntimeState `json:"state"`
	StartedAt *time.Time            `json:"started_at,omitempty"`
	ExitCode  int                   `json:"exit_code"`
	Detail    string                `json:"detail,omitempty"`
}

// StatusToJSON converts a Status for the wire.
func StatusToJSON(s provider.Status) StatusJSON {
	out := StatusJSON{State: s.State, ExitCode: s.ExitCode, Detail: s.Detail}
	if !s.StartedAt.IsZero() {
		t := s.StartedAt.UTC()
		out.StartedAt = &t
	}
	return out
}

// Status converts back.
func (s StatusJSON) Status() provider.Status {
	out := provider.Status{State: s.State, ExitCode: s.ExitCode, Detail: s.Detail}
	if s.StartedAt != nil {
		out.StartedAt = *s.StartedAt
	}
	return out
}

// LogsJSON is the answer of GET /v1/sandboxes/{id}/logs.
type LogsJSON struct {
	Lines []string `json:"lines"`
}

// ErrorBody is the JSON body of every non-2xx worker answer. Code is an
// errs class code ("NOT_FOUND"); Message is caller-safe text.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError writes err as the protocol's error answer: the status of its
// class and its caller-safe message (never the internal cause).
func WriteError(w http.ResponseWriter, err error) {
	c := errs.ClassOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(c.HTTPStatus())
	json.NewEncoder(w).Encode(ErrorBody{Code: c.Code(), Message: errs.Message(err)})
}

// DecodeError turns a non-2xx worker answer back into a classified error of
// the same class. An answer without an error body (a proxy's 502, say) is
// classified by its status.
func DecodeError(resp *http.Response) error {
	var eb ErrorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &eb) == nil && eb.Code != "" {
		return errs.New(errs.ClassFromCode(eb.Code), "%s", eb.Message)
	}
	return errs.New(classOfStatus(resp.StatusCode), "worker answered %d", resp.StatusCode)
}

func classOfStatus(code int) errs.Class {
	switch code {
	case http.StatusBadRequest:
		return errs.Invalid
	case http.StatusUnauthorized:
		return errs.Unauthorized
	case http.StatusForbidden:
		return errs.Forbidden
	case http.StatusNotFound:
		return errs.NotFound
	case http.StatusConflict:
		return errs.Conflict
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return errs.Timeout
	case http.StatusRequestEntityTooLarge:
		return errs.TooLarge
	case http.StatusTooManyRequests:
		return errs.Limit
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return errs.Unavailable
	}
	return errs.Internal
}
