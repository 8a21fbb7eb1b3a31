package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFiles_RoundTrip(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	base := "/sandboxes/" + id + "/files"
	steps := []struct {
		method, path, body string
		status             int
		want               string // exact body, trimmed
	}{
		{"POST", base, `{"path":"/work/a.txt","content":"hello"}`, 200, `{"status":"written"}`},
		{"POST", base, `{"path":"/work/b.bin","content":"AAEC/w==","encoding":"base64","mode":"0600","extra":1}`, 200, `{"status":"written"}`},
		{"GET", base + "?path=/work/a.txt", "", 200, "hello"},
		{"GET", base + "/glob?pattern=/work/*.txt", "", 200, `["/work/a.txt"]`},
		{"GET", base + "/glob?pattern=/none/*", "", 200, `[]`},
		{"GET", base + "/list?path=/empty", "", 200, `[]`},
		{"POST", base + "/move", `{"old_path":"/work/a.txt","new_path":"/work/c.txt"}`, 200, `{"status":"moved"}`},
		{"POST", base + "/chmod", `{"path":"/work/c.txt","mode":"755"}`, 200, `{"status":"chmod applied"}`},
		{"DELETE", base + "?path=/work/b.bin&recursive=true", "", 200, `{"status":"deleted"}`},
		{"GET", base + "?path=/work/b.bin", "", 404, ""},
	}
	for _, s := range steps {
		rec := h.do(s.method, s.path, s.body)
		if rec.Code != s.status {
			t.Fatalf("%s %s: status %d, want %d; body %s", s.method, s.path, rec.Code, s.status, rec.Body)
		}
		if s.want != "" && strings.TrimSpace(rec.Body.String()) != s.want {
			t.Errorf("%s %s: body %q, want %q", s.method, s.path, rec.Body, s.want)
		}
	}

	if rec := h.do("POST", base, `{"path":"/work/b.bin","content":"AAEC/w==","encoding":"base64"}`); rec.Code != 200 {
		t.Fatalf("base64 write: %d %s", rec.Code, rec.Body)
	}
	rec := h.do("GET", base+"?path=/work/b.bin", "")
	if got := rec.Body.Bytes(); string(got) != "\x00\x01\x02\xff" || rec.Header().Get("Content-Type") != "application/octet-stream" || rec.Header().Get("Content-Length") != "4" {
		t.Errorf("binary read = %q %v", got, rec.Header())
	}
	rec = h.do("GET", base+"/stat?path=/work/c.txt", "")
	m := decodeMap(t, rec)
	if diff := cmp.Diff([]string{"is_dir", "mod_time", "mode", "path", "size"}, keys(m)); diff != "" {
		t.Errorf("stat keys (-want +got):\n%s", diff)
	}
	if m["mode"] != "755" || m["size"] != float64(5) || m["path"] != "/work/c.txt" {
		t.Errorf("stat = %s", rec.Body)
	}
	var list []map[string]any
	rec = h.do("GET", base+"/list?path=/work", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 2 {
		t.Errorf("list = %s", rec.Body)
	}
}

func TestFiles_RejectBadInput(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	base := "/sandboxes/" + id + "/files"
	tests := []struct{ name, method, path, body, msg string }{
		{"write no body", "POST", base, ``, "required"},
		{"write no path", "POST", base, `{"content":"x"}`, `"path"`},
		{"write bad mode", "POST", base, `{"path":"/a","content":"x","mode":"0999"}`, `"mode"`},
		{"write mode too big", "POST", base, `{"path":"/a","content":"x","mode":"77777"}`, `"mode"`},
		{"write numeric mode", "POST", base, `{"path":"/a","content":"x","mode":644}`, `"mode"`},
		{"write bad base64", "POST", base, `{"path":"/a","content":"@@@","encoding":"base64"}`, "base64"},
		{"write bad encoding", "POST", base, `{"path":"/a","content":"x","encoding":"hex"}`, `"encoding"`},
		{"write content wrong type", "POST", base, `{"path":"/a","content":[1]}`, `"content"`},
		{"read no path", "GET", base, ``, "path query parameter required"},
		{"delete no path", "DELETE", base, ``, "path"},
		{"delete bad recursive", "DELETE", base + "?path=/a&recursive=yes please", ``, "recursive"},
		{"stat no path", "GET", base + "/stat", ``, "path"},
		{"glob no pattern", "GET", base + "/glob", ``, "pattern"},
		{"move missing new", "POST", base + "/move", `{"old_path":"/a"}`, `"new_path"`},
		{"chmod missing mode", "POST", base + "/chmod", `{"path":"/a"}`, `"mode"`},
		{"chmod bad mode", "POST", base + "/chmod", `{"path":"/a","mode":"rwx"}`, `"mode"`},
		{"raw no path", "PUT", base + "/raw", `x`, "path"},
		{"raw bad mode", "PUT", base + "/raw?path=/a&mode=9", `x`, `"mode"`},
		{"relative path (service)", "GET", base + "/stat?path=etc/passwd", ``, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.ReplaceAll(tt.path, " ", "%20")
			m := wantError(t, h.do(tt.method, path, tt.body), 400, "BAD_REQUEST")
			if !strings.Contains(m["message"].(string), tt.msg) {
				t.Errorf("message %q does not contain %q", m["message"], tt.msg)
			}
		})
	}
}

func TestFiles_RawUpload(t *testing.T) {
	h := newHarness(t) // MaxUploadBytes 1 MiB
	id := h.create(`{}`)
	url := "/sandboxes/" + id + "/files/raw?path=/data/blob&mode=0600"
	body := strings.Repeat("z", 1<<20)
	rec := h.do("PUT", url, body)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"written","size":1048576}` {
		t.Fatalf("upload at the limit = %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("GET", "/sandboxes/"+id+"/files/stat?path=/data/blob", ""); decodeMap(t, rec)["mode"] != "600" {
		t.Errorf("mode not applied: %s", rec.Body)
	}
}

// countingBody is a request body that records how much of it was read.
type countingBody struct {
	remaining, read int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.remaining == 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > c.remaining {
		n = c.remaining
	}
	for i := range p[:n] {
		p[i] = 'x'
	}
	c.remaining -= n
	c.read += n
	return int(n), nil
}

func (c *countingBody) Close() error { return nil }

func TestFiles_RawUploadOverLimit(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name          string
		contentLength int64 // -1 = chunked
		size          int64
		maxRead       int64
	}{
		{"1 GB with Content-Length is refused unread", 1 << 30, 1 << 30, 0},
		{"chunked body is cut at the limit", -1, 1 << 30, limit + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.create(`{}`)
			body := &countingBody{remaining: tt.size}
			req := httptest.NewRequest("PUT", BasePath+"/sandboxes/"+id+"/files/raw?path=/big", nil)
			req.Body, req.ContentLength = body, tt.contentLength
			if tt.contentLength >= 0 {
				req.Header.Set("Content-Length", strconv.FormatInt(tt.contentLength, 10))
			}
			rec := httptest.NewRecorder()
			h.h.ServeHTTP(rec, req)
			wantError(t, rec, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			if body.read > tt.maxRead {
				t.Errorf("read %d bytes of the body, want at most %d", body.read, tt.maxRead)
			}
			if rec := h.do("GET", "/sandboxes/"+id+"/files/stat?path=/big", ""); rec.Code != 404 {
				t.Errorf("partial file was written: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestFiles_NoUploadLimit: a negative MaxUploadBytes lifts the cap, so a
// body declared far over DefaultMaxUploadBytes is read rather than refused,
// and a chunked one is written whole.
func TestFiles_NoUploadLimit(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxUploadBytes = -1 })
	id := h.create(`{}`)

	// The body ends early, so the service sees a short body (400), but
	// only after it was let through and read.
	body := &countingBody{remaining: 2 << 20}
	req := httptest.NewRequest("PUT", BasePath+"/sandboxes/"+id+"/files/raw?path=/declared", nil)
	req.Body, req.ContentLength = body, 2*DefaultMaxUploadBytes
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	if rec.Code == http.StatusRequestEntityTooLarge || body.read != 2<<20 {
		t.Errorf("declared %d bytes: got %d %s after reading %d bytes, want the body read (%d bytes) and no 413",
			req.ContentLength, rec.Code, rec.Body, body.read, 2<<20)
	}

	body = &countingBody{remaining: 3 << 20}
	req = httptest.NewRequest("PUT", BasePath+"/sandboxes/"+id+"/files/raw?path=/chunked", nil)
	req.Body, req.ContentLength = body, -1
	rec = httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	if want := `{"status":"written","size":3145728}`; rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("chunked 3 MiB: got %d %s, want 200 %s", rec.Code, rec.Body, want)
	}
}

func TestJSONBodyOverLimit_413(t *testing.T) {
	h := newHarness(t) // MaxBodyBytes 64 KiB
	id := h.create(`{}`)
	big := `{"path":"/a","content":"` + strings.Repeat("a", 70<<10) + `"}`
	wantError(t, h.do("POST", "/sandboxes/"+id+"/files", big), 413, "PAYLOAD_TOO_LARGE")

	// Chunked (no Content-Length): cut off while decoding.
	req := httptest.NewRequest("POST", BasePath+"/sandboxes/"+id+"/exec", nil)
	req.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"command":"echo","args":["`), &countingBody{remaining: 1 << 30}))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	wantError(t, rec, 413, "PAYLOAD_TOO_LARGE")
}
