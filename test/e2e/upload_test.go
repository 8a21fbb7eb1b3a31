package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noise is an endless deterministic pseudo-random byte stream (splitmix64):
// incompressible, without runs of zeros (so nothing can store it sparse),
// and generated as it is read, so a gigabyte never sits in memory.
type noise struct {
	state uint64
	buf   [64 << 10]byte
	off   int // unread bytes start at buf[off:]
}

func newNoise(seed uint64) *noise { n := &noise{state: seed}; n.off = len(n.buf); return n }

func (n *noise) Read(p []byte) (int, error) {
	if n.off == len(n.buf) {
		for i := 0; i < len(n.buf); i += 8 {
			n.state += 0x9e3779b97f4a7c15
			z := n.state
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			binary.LittleEndian.PutUint64(n.buf[i:], z^(z>>31))
		}
		n.off = 0
	}
	c := copy(p, n.buf[n.off:])
	n.off += c
	return c, nil
}

// TestUpload_RawStreaming1GiB: with server.max_upload_bytes: -1 (no limit),
// 1 GiB of pseudo-random data goes up as one chunked raw upload (no
// Content-Length) and comes back down, hashed on both ends, with the
// server's peak memory bounded. The data is never held in memory here
// either: it is generated while it is sent.
func TestUpload_RawStreaming1GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB through the server")
	}
	s := startServer(t, "", "STACYVM_SERVER_MAX_UPLOAD_BYTES=-1")
	sb := s.spawn(map[string]any{"ttl": "10m"})
	const size = 1 << 30 // over the default limit (512 MiB)
	const path = "/workspace/big.bin"
	before := peakRSSMB(t, s.pid())

	sent := sha256.New()
	body := io.NopCloser(io.TeeReader(io.LimitReader(newNoise(42), size), sent)) // NopCloser: no length to sniff
	req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/raw?path="+path, body)
	req.ContentLength = -1 // unknown: HTTP/1.1 sends it chunked
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	up := time.Since(start)
	var res struct {
		Status string `json:"status"`
		Size   int64  `json:"size"`
	}
	json.Unmarshal(data, &res)
	if resp.StatusCode != 200 || res.Status != "written" || res.Size != size {
		t.Fatalf("upload: got %d %s, want 200 written with size %d", resp.StatusCode, data, size)
	}
	want := fmt.Sprintf("%x", sent.Sum(nil))

	// Inside the sandbox: every byte, and stored in full (not sparse).
	var r execJSON
	code, data := s.call("POST", "/sandboxes/"+sb.ID+"/exec", map[string]any{
		"command": "stat -c '%s %b %B' " + path + " && sha256sum " + path + " | cut -d' ' -f1", "timeout": "3m"}, &r)
	if code != 200 || r.ExitCode != 0 {
		t.Fatalf("check inside: %d %s", code, data)
	}
	lines := strings.Fields(r.Stdout)
	if len(lines) != 4 {
		t.Fatalf("check inside: %q", r.Stdout)
	}
	gotSize, _ := strconv.ParseInt(lines[0], 10, 64)
	blocks, _ := strconv.ParseInt(lines[1], 10, 64)
	bsize, _ := strconv.ParseInt(lines[2], 10, 64)
	if gotSize != size || blocks*bsize < size {
		t.Errorf("inside: %d bytes in %d blocks of %d, want %d bytes stored in full", gotSize, blocks, bsize, size)
	}
	if lines[3] != want {
		t.Errorf("sha256 inside the sandbox %s, want %s (as sent)", lines[3], want)
	}

	// Back down, streamed and hashed as it arrives.
	start = time.Now()
	resp, err = http.Get(s.url + "/sandboxes/" + sb.ID + "/files?path=" + path)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", err, resp)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	down := time.Since(start)
	if err != nil || n != size || resp.ContentLength != size {
		t.Errorf("download: %d bytes (Content-Length %d), %v; want %d", n, resp.ContentLength, err, size)
	}
	if g := fmt.Sprintf("%x", got.Sum(nil)); g != want {
		t.Errorf("downloaded sha256 %s, want %s", g, want)
	}

	after := peakRSSMB(t, s.pid())
	t.Logf("1 GiB raw upload (chunked) %v (%.0f MB/s), download %v (%.0f MB/s); server VmHWM %d MB before, %d MB after",
		up.Round(time.Millisecond), size/1e6/up.Seconds(), down.Round(time.Millisecond), size/1e6/down.Seconds(), before, after)
	if after-before >= 100 {
		t.Errorf("server peak RSS grew by %d MB over a 1 GiB upload and download; want bounded (< 100 MB)", after-before)
	}
}
