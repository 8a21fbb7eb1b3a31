package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestBadInput: every kind of bad request gets a typed error with the right
// status, never a 500, a hang or a panic.
func TestBadInput(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	unknown := "sb-000000000000"
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"malformed json", "POST", "/sandboxes", `{not json`, 400, "BAD_REQUEST"},
		{"wrong type", "POST", "/sandboxes", `{"memory_mb":"lots"}`, 400, "BAD_REQUEST"},
		{"negative ttl", "POST", "/sandboxes", `{"ttl":"-5m"}`, 400, "BAD_REQUEST"},
		{"malformed ttl", "POST", "/sandboxes", `{"ttl":"soon"}`, 400, "BAD_REQUEST"},
		{"ttl over max", "POST", "/sandboxes", `{"ttl":"9999h"}`, 429, "RESOURCE_LIMIT"},
		{"missing image", "POST", "/sandboxes", `{"image":"stacyvm/does-not-exist:never"}`, 400, "BAD_REQUEST"},
		{"unknown provider", "POST", "/sandboxes", `{"provider":"nope"}`, 400, "BAD_REQUEST"},
		{"bad network", "POST", "/sandboxes", `{"network":"host"}`, 400, "BAD_REQUEST"},
		{"negative timeout", "POST", "/sandboxes/" + sb.ID + "/exec", `{"command":"true","timeout":"-1s"}`, 400, "BAD_REQUEST"},
		{"bad mode", "POST", "/sandboxes/" + sb.ID + "/exec", `{"command":"true","mode":"bash"}`, 400, "BAD_REQUEST"},
		{"argv without command", "POST", "/sandboxes/" + sb.ID + "/exec", `{"command":"","mode":"argv"}`, 400, "BAD_REQUEST"},
		{"bad file mode", "POST", "/sandboxes/" + sb.ID + "/files", `{"path":"/x","content":"","mode":"999"}`, 400, "BAD_REQUEST"},
		{"read missing file", "GET", "/sandboxes/" + sb.ID + "/files?path=/nope", nil, 404, "NOT_FOUND"},
		{"read a directory", "GET", "/sandboxes/" + sb.ID + "/files?path=/etc", nil, 400, "BAD_REQUEST"},
		{"file path missing", "GET", "/sandboxes/" + sb.ID + "/files", nil, 400, "BAD_REQUEST"},
		{"get unknown", "GET", "/sandboxes/" + unknown, nil, 404, "NOT_FOUND"},
		{"exec unknown", "POST", "/sandboxes/" + unknown + "/exec", `{"command":"true"}`, 404, "NOT_FOUND"},
		{"files unknown", "GET", "/sandboxes/" + unknown + "/files?path=/etc/hostname", nil, 404, "NOT_FOUND"},
		{"delete unknown", "DELETE", "/sandboxes/" + unknown, nil, 404, "NOT_FOUND"},
		{"garbage id", "GET", "/sandboxes/..%2F..%2Fetc", nil, 404, "NOT_FOUND"},
		{"bad user id", "POST", "/sandboxes/admission", `{}`, 0, ""}, // checked below with a header
	}
	for _, c := range cases {
		if c.status == 0 {
			continue
		}
		code, data := s.call(c.method, c.path, c.body, nil)
		wantError(t, c.name, code, data, c.status, c.code)
	}

	// Unknown fields are tolerated.
	if code, data := s.call("POST", "/sandboxes/"+sb.ID+"/exec", `{"command":"true","future_field":1}`, nil); code != 200 {
		t.Errorf("unknown field: %d %s, want 200", code, data)
	}
	// X-User-ID validation.
	for _, uid := range []string{strings.Repeat("u", 129), "a/b", "a\\b", "tab\there"} {
		req, _ := newJSONRequest("POST", s.url+"/sandboxes/admission", `{}`)
		req.Header.Set("X-User-ID", uid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, fmt.Sprintf("X-User-ID %q", uid), resp.StatusCode, data, 400, "BAD_REQUEST")
	}
}

// TestTraversalStaysInside: traversal-looking paths are plain paths inside
// the sandbox; the host's files are never reachable.
func TestTraversalStaysInside(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	marker := fmt.Sprintf("host-secret-%d", os.Getpid())
	hostFile := "/tmp/stacyvm-e2e-" + marker
	if err := os.WriteFile(hostFile, []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(hostFile)
	code, data := s.call("GET", "/sandboxes/"+sb.ID+"/files?path=/../../../.."+hostFile, nil, nil)
	if code == 200 && strings.Contains(string(data), marker) {
		t.Fatal("read a host file through a traversal path")
	}
	wantError(t, "host file through traversal", code, data, 404, "NOT_FOUND")
	want := s.exec(sb.ID, "cat /etc/hostname").Stdout
	code, data = s.call("GET", "/sandboxes/"+sb.ID+"/files?path=/../../etc/hostname", nil, nil)
	if code != 200 || string(data) != want {
		t.Errorf("/../../etc/hostname: got %d %q, want the sandbox's %q", code, data, want)
	}
	// Writing through ../ lands inside the sandbox too.
	s.call("POST", "/sandboxes/"+sb.ID+"/files", map[string]any{"path": "/../../../tmp/" + marker, "content": "x"}, nil)
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		os.Remove("/tmp/" + marker)
		t.Fatal("a write through ../ reached the host")
	}
	if r := s.exec(sb.ID, "cat /tmp/"+marker); r.Stdout != "x" {
		t.Errorf("write through ../ did not land inside the sandbox: %+v", r)
	}
}

// TestHugeUploadRefused: a 1 GB upload is refused with 413 without the
// server buffering it.
func TestHugeUploadRefused(t *testing.T) {
	s := startServer(t, "", "STACYVM_SERVER_MAX_UPLOAD_BYTES=67108864")
	sb := s.spawn(map[string]any{})
	const size = 1 << 30

	// Declared length over the limit: refused before reading.
	req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/raw?path=/tmp/big", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("declared 1 GB upload: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "declared 1 GB upload", resp.StatusCode, data, 413, "PAYLOAD_TOO_LARGE")

	// Chunked, no declared length: cut at the limit.
	req, _ = http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/raw?path=/tmp/big", io.NopCloser(io.LimitReader(zeros{}, size)))
	req.ContentLength = -1
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		data, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, "chunked 1 GB upload", resp.StatusCode, data, 413, "PAYLOAD_TOO_LARGE")
	} // the server may also close the connection mid-body: acceptable

	// A 1 GB JSON body is refused too.
	req, _ = http.NewRequest("POST", s.url+"/sandboxes/"+sb.ID+"/files", io.MultiReader(strings.NewReader(`{"path":"/x","content":"`), io.LimitReader(letters{}, size)))
	req.ContentLength = -1
	if resp, err = http.DefaultClient.Do(req); err == nil {
		data, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, "1 GB JSON body", resp.StatusCode, data, 413, "PAYLOAD_TOO_LARGE")
	}

	if hwm := peakRSSMB(t, s.pid()); hwm > 200 {
		t.Errorf("server peak RSS %d MB after 1 GB uploads; want bounded memory (< 200 MB)", hwm)
	} else {
		t.Logf("server peak RSS %d MB", hwm)
	}
	if r := s.exec(sb.ID, "ls /tmp/big 2>/dev/null | wc -l"); strings.TrimSpace(r.Stdout) != "0" {
		t.Errorf("a refused upload left a partial file behind")
	}
}

type zeros struct{}

// letters is an endless stream of 'a', valid inside a JSON string.
type letters struct{}

func (letters) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func peakRSSMB(t *testing.T, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb / 1024
		}
	}
	return -1
}

// TestLargeUploadsLandInside: uploads from 1 MiB take the server's host
// path (docs/decisions/007-host-upload-path.md); through symlinks (absolute
// ones make it fall back to the agent), ../ and into missing directories,
// every byte lands inside the sandbox and nothing on the host.
func TestLargeUploadsLandInside(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	marker := fmt.Sprintf("big-%d", os.Getpid())
	if r := s.exec(sb.ID, "mkdir -p /workspace/real && ln -s /workspace/real /tmp/abs && ln -s ../workspace/real /tmp/rel && ln -s / /workspace/root"); r.ExitCode != 0 {
		t.Fatalf("setup: %+v", r)
	}
	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	sum := fmt.Sprintf("%x", sha256.Sum256(payload))
	for _, p := range []string{
		"/workspace/new/dir/f",
		"/tmp/abs/f",
		"/tmp/rel/g",
		"/workspace/root/tmp/" + marker,
		"/../../../tmp/" + marker + "-2",
	} {
		req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/raw?path="+p+"&mode=0640", bytes.NewReader(payload))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("upload %s: %v", p, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("upload %s: %d %s", p, resp.StatusCode, data)
		}
		r := s.exec(sb.ID, "sha256sum < "+p+" | cut -d' ' -f1; stat -L -c %a "+p)
		if want := sum + "\n640\n"; r.Stdout != want {
			t.Errorf("%s inside the sandbox: %q, want %q", p, r.Stdout, want)
		}
	}
	for _, p := range []string{"/tmp/" + marker, "/tmp/" + marker + "-2", "/workspace/real/f"} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("upload reached the host at %s", p)
		}
	}
	// A directory is not overwritten.
	req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/raw?path=/workspace/real", bytes.NewReader(payload))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "upload over a directory", resp.StatusCode, data, 400, "BAD_REQUEST")
}
