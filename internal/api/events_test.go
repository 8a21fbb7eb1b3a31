package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/events"
)

// sseEvent is one parsed Server-Sent Event (or a heartbeat comment).
type sseEvent struct{ id, typ, data string }

// readSSE parses events from body into ch until it ends.
func readSSE(body *bufio.Reader, ch chan<- sseEvent) {
	defer close(ch)
	var ev sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				ch <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ": heartbeat"):
			ch <- sseEvent{typ: "heartbeat"}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// sseServer serves the API over real HTTP with a short WriteTimeout, which
// the event stream must survive.
func sseServer(t *testing.T, bus *events.Bus) *httptest.Server {
	t.Helper()
	h := newHarness(t, func(o *Options) { o.Ops = Ops{Events: bus, Heartbeat: 50 * time.Millisecond} })
	srv := httptest.NewUnstartedServer(h.h)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func openSSE(t *testing.T, ctx context.Context, url, lastID string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+BasePath+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 64)
	go readSSE(bufio.NewReader(resp.Body), ch)
	return ch, resp
}

// next returns the next non-heartbeat event.
func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.typ != "heartbeat" {
				return ev
			}
		case <-deadline:
			t.Fatal("no event within 5s")
		}
	}
}

func TestEvents_LiveStreamOutlivesWriteTimeout(t *testing.T) {
	bus := events.NewBus(16)
	srv := sseServer(t, bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := openSSE(t, ctx, srv.URL, "")
	// Wait past the server's 300 ms WriteTimeout, counting heartbeats.
	beats := 0
	for end := time.After(time.Second); beats >= 0; {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream cut after %d heartbeats", beats)
			}
			if ev.typ == "heartbeat" {
				beats++
			}
		case <-end:
			goto done
		}
	}
done:
	if beats < 5 {
		t.Errorf("%d heartbeats in 1s at a 50ms interval, want >= 5", beats)
	}
	bus.Publish(events.SandboxCreated, map[string]string{"sandbox_id": "sb-0123456789ab"})
	ev := next(t, ch)
	if ev.id != "1" || ev.typ != events.SandboxCreated || !strings.Contains(ev.data, "sb-0123456789ab") {
		t.Errorf("event = %+v", ev)
	}
}

func TestEvents_ResumeWithLastEventID(t *testing.T) {
	bus := events.NewBus(16)
	for range 3 {
		bus.Publish(events.ExecStarted, map[string]string{"sandbox_id": "sb-0123456789ab"})
	}
	srv := sseServer(t, bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := openSSE(t, ctx, srv.URL, "1")
	for _, want := range []string{"2", "3"} {
		if ev := next(t, ch); ev.id != want || ev.typ != events.ExecStarted {
			t.Errorf("event = %+v, want id %s", ev, want)
		}
	}
}

func TestEvents_IDOlderThanRingGetsReset(t *testing.T) {
	bus := events.NewBus(2)
	for range 5 {
		bus.Publish(events.SandboxDestroyed, map[string]string{})
	}
	srv := sseServer(t, bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := openSSE(t, ctx, srv.URL, "1")
	ev := next(t, ch)
	if ev.typ != EventReset || ev.id != "3" || !strings.Contains(ev.data, `"requested_id":1`) {
		t.Fatalf("first event = %+v, want reset with id 3", ev)
	}
	if ev := next(t, ch); ev.id != "4" {
		t.Errorf("after reset: %+v, want id 4", ev)
	}
}

func TestEvents_BadLastEventIDAndNotConfigured(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Ops = Ops{Events: events.NewBus(4)} })
	wantError(t, h.do("GET", "/events", "", "Last-Event-ID", "abc"), 400, "BAD_REQUEST")
	wantError(t, h.do("GET", "/events?last_event_id=-1", ""), 400, "BAD_REQUEST")
	bare := newHarness(t)
	wantError(t, bare.do("GET", "/events", ""), 503, "UNAVAILABLE")
	wantError(t, bare.do("GET", "/metrics/prometheus", ""), 503, "UNAVAILABLE")
	wantError(t, bare.do("GET", "/diagnostics", ""), 503, "UNAVAILABLE")
}
