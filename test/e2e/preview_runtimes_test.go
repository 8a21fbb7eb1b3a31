package e2e

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestInteractive_AcrossProviders: previews (plain and WebSocket), archives
// and watches go through the agent, so the gVisor and PRoot providers get
// them unchanged.
func TestInteractive_AcrossProviders(t *testing.T) {
	for _, p := range []struct{ name, env string }{
		{"gvisor", "STACYVM_PROVIDERS_GVISOR_ENABLED=true"},
		{"proot", "STACYVM_PROVIDERS_PROOT_ENABLED=true"},
	} {
		t.Run(p.name, func(t *testing.T) {
			s := keyedServer(t, p.env)
			var sb sandboxJSON
			code, data := s.kcall("POST", "/sandboxes", map[string]any{"image": "stacyvm/python", "provider": p.name}, &sb)
			if code != 201 {
				t.Skipf("provider %s cannot spawn here: %d %s", p.name, code, data)
			}
			s.kcall("POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/app/app.py", "content": previewApp}, nil)
			s.kcall("POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{"command": fmt.Sprintf("python3 /app/app.py %d >/tmp/app.log 2>&1 </dev/null &", appPort)}, nil)
			base := fmt.Sprintf("%s/preview/%s/%d", s.root(), sb.ID, appPort)
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, body := kdo(t, nil, "GET", base+"/small", previewKey, nil, nil)
				if resp.StatusCode == 200 && string(body) == "ok" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("preview on %s: %d %s", p.name, resp.StatusCode, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
			checkWebSocket(t, http.DefaultClient, base+"/ws")

			// Watch, then write through an archive upload: both through the agent.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s.kcall("POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{"command": "mkdir -p /tmp/wt"}, nil)
			req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/sandboxes/"+sb.ID+"/files/watch?path=/tmp/wt", nil)
			req.Header.Set("X-API-Key", previewKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("watch on %s: %v %v", p.name, err, resp)
			}
			defer resp.Body.Close()
			lines := bufio.NewScanner(resp.Body)
			waitFor := func(want string) {
				t.Helper()
				for lines.Scan() {
					if strings.Contains(lines.Text(), want) {
						return
					}
				}
				t.Fatalf("watch on %s: no line with %q (%v)", p.name, want, lines.Err())
			}
			waitFor(`"type":"ready"`)
			pr, pw := io.Pipe()
			go func() {
				tw := tar.NewWriter(pw)
				tw.WriteHeader(&tar.Header{Name: "a/b.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
				tw.Write([]byte("hi"))
				pw.CloseWithError(tw.Close())
			}()
			resp2, body := kdo(t, nil, "PUT", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/tmp/wt", previewKey, pr, nil)
			if resp2.StatusCode != 200 {
				t.Fatalf("archive upload on %s: %d %s", p.name, resp2.StatusCode, body)
			}
			waitFor(`"path":"/tmp/wt/a/b.txt"`)
			resp2, body = kdo(t, nil, "GET", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/tmp/wt", previewKey, nil, nil)
			tr := tar.NewReader(strings.NewReader(string(body)))
			var names []string
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				names = append(names, h.Name)
			}
			if resp2.StatusCode != 200 || strings.Join(names, ",") != "a/,a/b.txt" {
				t.Errorf("archive download on %s: %d %v", p.name, resp2.StatusCode, names)
			}
		})
	}
}
