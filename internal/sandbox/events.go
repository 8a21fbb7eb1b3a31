package sandbox

import (
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/store"
)

// EventPublisher receives the service's lifecycle events (internal/events.Bus
// implements it). Publish must not block.
type EventPublisher interface {
	Publish(typ string, data any) events.Event
}

// SandboxEvent is the payload of every sandbox.* event.
type SandboxEvent struct {
	SandboxID string `json:"sandbox_id"`
	State     string `json:"state"`
	Provider  string `json:"provider"`
	Image     string `json:"image"`
	OwnerID   string `json:"owner_id,omitempty"`
	TenantID  string `json:"tenant_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// ExecEvent is the payload of exec.started and exec.finished. The command
// itself is left out: command lines often carry secrets.
type ExecEvent struct {
	SandboxID  string `json:"sandbox_id"`
	Provider   string `json:"provider"`
	TenantID   string `json:"tenant_id,omitempty"`
	Mode       string `json:"mode"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	TimedOut   bool   `json:"timed_out,omitempty"`
	DurationMS *int64 `json:"duration_ms,omitempty"`
	Error      string `json:"error,omitempty"`
}

// emit publishes a sandbox event for rec, except for warm pool members,
// which nobody outside the service knows about.
func (s *Service) emit(typ string, rec *store.Sandbox, reason string) {
	if s.events == nil || rec == nil || State(rec.State) == StateWarm {
		return
	}
	s.events.Publish(typ, SandboxEvent{SandboxID: rec.ID, State: rec.State, Provider: rec.Provider,
		Image: rec.Image, OwnerID: rec.OwnerID, TenantID: rec.TenantID, Reason: reason})
}

func execMode(m string) string {
	if m == "" {
		return ModeShell
	}
	return m
}

// execStarted publishes exec.started.
func (s *Service) execStarted(rec *store.Sandbox, mode string) {
	if s.events != nil {
		s.events.Publish(events.ExecStarted, ExecEvent{SandboxID: rec.ID, Provider: rec.Provider, TenantID: rec.TenantID, Mode: execMode(mode)})
	}
}

// execFinished records the exec's timing and publishes exec.finished.
func (s *Service) execFinished(rec *store.Sandbox, mode string, res ExecResult, err error, start time.Time) {
	s.observeExec(rec.Provider, res, err, start)
	if s.events == nil {
		return
	}
	ev := ExecEvent{SandboxID: rec.ID, Provider: rec.Provider, TenantID: rec.TenantID, Mode: execMode(mode)}
	if err != nil {
		ev.Error = errs.Message(err)
	} else {
		ms := res.Duration.Milliseconds()
		ev.ExitCode, ev.TimedOut, ev.DurationMS = &res.ExitCode, res.TimedOut, &ms
	}
	s.events.Publish(events.ExecFinished, ev)
}
