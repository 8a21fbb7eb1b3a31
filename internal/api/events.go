package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
)

// defaultHeartbeat keeps idle SSE connections (and proxies) alive.
const defaultHeartbeat = 15 * time.Second

// EventReset is the SSE event type sent when the requested Last-Event-ID is
// no longer in the ring: the client missed events and must re-read state.
const EventReset = "reset"

// streamEvents serves GET /events: lifecycle events as Server-Sent Events.
// Each event is "id: N", "event: <type>", "data: <json>". A client resumes
// with Last-Event-ID (header, or ?last_event_id= for the first connect);
// an id older than the ring gets an explicit reset event first. The server
// has no WriteTimeout and the handler clears any per-connection deadline, so
// the stream is never cut by a write timeout.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	bus := s.ops.Events
	if bus == nil {
		return errNotConfigured("the event stream")
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	var after uint64
	if last != "" {
		v, err := strconv.ParseUint(strings.TrimSpace(last), 10, 64)
		if err != nil {
			return errs.New(errs.Invalid, "Last-Event-ID must be a non-negative integer")
		}
		after = v
	}
	sub := bus.Subscribe(after)
	defer sub.Close()

	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return errs.Wrap(errs.Internal, err, "event stream setup failed")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	if sub.Reset {
		resumeAt := bus.LastID()
		if len(sub.Backlog) > 0 {
			resumeAt = sub.Backlog[0].ID - 1
		}
		data, _ := json.Marshal(map[string]any{"requested_id": after, "resume_id": resumeAt,
			"ring_size": bus.Size(), "reason": "the requested event is no longer buffered; re-read current state"})
		if writeSSE(w, resumeAt, EventReset, data) != nil {
			return nil
		}
	}
	for _, ev := range sub.Backlog {
		if s.eventVisible(r, ev) && writeSSE(w, ev.ID, ev.Type, ev.Data) != nil {
			return nil
		}
	}
	if rc.Flush() != nil {
		return nil
	}
	every := s.ops.Heartbeat
	if every <= 0 {
		every = defaultHeartbeat
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				// Fell too far behind: end the stream; the client resumes
				// from its Last-Event-ID.
				return nil
			}
			if !s.eventVisible(r, ev) {
				continue
			}
			if writeSSE(w, ev.ID, ev.Type, ev.Data) != nil {
				return nil
			}
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		}
		if rc.Flush() != nil {
			return nil
		}
	}
}

func writeSSE(w http.ResponseWriter, id uint64, typ string, data []byte) error {
	_, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", id, typ, data)
	return err
}

// eventVisible hides events of other tenants from non-admin principals.
// Without a principal in the context (single-tenant wiring) everything is
// visible, as every sandbox is.
func (s *server) eventVisible(r *http.Request, ev events.Event) bool {
	p := auth.FromContext(r.Context())
	if p == nil || p.IsAdmin() {
		return true
	}
	var t struct {
		TenantID string `json:"tenant_id"`
	}
	_ = json.Unmarshal(ev.Data, &t)
	if t.TenantID == "" {
		t.TenantID = auth.DefaultTenant
	}
	return p.CanSee(t.TenantID)
}
