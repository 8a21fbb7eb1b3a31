package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type watchEvent struct {
	Type  string `json:"type"`
	Path  string `json:"path"`
	IsDir bool   `json:"is_dir"`
}

// TestWatch_Events: create, modify and delete under a watched directory
// (including a directory tree made in one go) arrive as SSE events.
func TestWatch_Events(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	s.exec(sb.ID, "mkdir -p /workspace/w/sub")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/sandboxes/"+sb.ID+"/files/watch?path=/workspace/w", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, data)
	}
	events := make(chan watchEvent, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var typ string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var ev watchEvent
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev)
				if ev.Type != typ {
					t.Errorf("event line %q, data type %q", typ, ev.Type)
				}
				events <- ev
			}
		}
	}()
	expect := func(typ, path string) {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream ended while waiting for %s %s", typ, path)
				}
				if ev.Type == typ && ev.Path == path {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s event for %s", typ, path)
			}
		}
	}
	expect("ready", "/workspace/w")
	s.exec(sb.ID, "echo a > /workspace/w/sub/f")
	expect("create", "/workspace/w/sub/f")
	s.exec(sb.ID, "echo b >> /workspace/w/sub/f")
	expect("modify", "/workspace/w/sub/f")
	s.exec(sb.ID, "mkdir -p /workspace/w/x/y && echo c > /workspace/w/x/y/g")
	expect("create", "/workspace/w/x/y/g")
	s.exec(sb.ID, "rm /workspace/w/sub/f")
	expect("delete", "/workspace/w/sub/f")
	s.exec(sb.ID, "rm -rf /workspace/w")
	expect("delete", "/workspace/w")

	// Bad input is a plain error before any stream.
	for _, c := range []struct {
		q      string
		status int
		code   string
	}{{"path=/nope", 404, "NOT_FOUND"}, {"", 400, "BAD_REQUEST"}, {"path=/tmp&recursive=maybe", 400, "BAD_REQUEST"}} {
		resp, err := http.Get(s.url + "/sandboxes/" + sb.ID + "/files/watch?" + c.q)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, "watch ?"+c.q, resp.StatusCode, data, c.status, c.code)
	}
}
