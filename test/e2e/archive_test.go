package e2e

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// archiveFile is one regular file of a generated archive.
type archiveFile struct {
	name string
	size int64
	data []byte // nil: size zero bytes, generated while streaming
}

// tarStream writes files as a tar into a pipe while the caller reads it, so
// a gigabyte never sits in the test's memory either.
func tarStream(files []archiveFile, extra func(*tar.Writer)) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var err error
		for _, f := range files {
			if err = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: f.size, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
				break
			}
			if f.data != nil {
				_, err = tw.Write(f.data)
			} else {
				_, err = io.CopyN(tw, zeros{}, f.size)
			}
			if err != nil {
				break
			}
		}
		if err == nil && extra != nil {
			extra(tw)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// TestArchive_RoundTrip1GB: a 1 GB tree goes in as a streamed tar and comes
// back out as one, with the server's peak memory bounded.
func TestArchive_RoundTrip1GB(t *testing.T) {
	s := startServer(t, "", "STACYVM_SERVER_MAX_UPLOAD_BYTES=2147483648")
	sb := s.spawn(map[string]any{})
	small := make([]byte, 300<<10)
	rand.Read(small)
	const big = 1 << 30
	files := []archiveFile{
		{name: "data/small.bin", size: int64(len(small)), data: small},
		{name: "data/nested/deeper/big.bin", size: big},
		{name: "readme.txt", size: 5, data: []byte("hello")},
	}
	before := peakRSSMB(t, s.pid())
	start := time.Now()
	req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/workspace/tree", tarStream(files, nil))
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res struct {
		Status   string `json:"status"`
		Files    int    `json:"files"`
		Bytes    int64  `json:"bytes"`
		Received int64  `json:"received_bytes"`
	}
	json.Unmarshal(data, &res)
	if resp.StatusCode != 200 || res.Files != 3 || res.Bytes != big+int64(len(small))+5 {
		t.Fatalf("upload: %d %s", resp.StatusCode, data)
	}
	up := time.Since(start)
	if r := s.exec(sb.ID, "stat -c %s /workspace/tree/data/nested/deeper/big.bin; sha256sum < /workspace/tree/data/small.bin | cut -d' ' -f1; cat /workspace/tree/readme.txt"); r.Stdout != fmt.Sprintf("%d\n%x\nhello", big, sha256.Sum256(small)) {
		t.Errorf("extracted tree: %q", r.Stdout)
	}

	start = time.Now()
	resp, err = http.Get(s.url + "/sandboxes/" + sb.ID + "/files/archive?path=/workspace/tree")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", err, resp)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-tar" {
		t.Errorf("Content-Type %q", ct)
	}
	got := map[string]string{}
	var total int64
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download stream: %v", err)
		}
		hs := sha256.New()
		n, err := io.Copy(hs, tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		total += n
		got[h.Name] = fmt.Sprintf("%c %d %x", h.Typeflag, n, hs.Sum(nil)[:4])
	}
	resp.Body.Close()
	down := time.Since(start)
	sum := sha256.Sum256(small)
	if total != big+int64(len(small))+5 || got["data/nested/"] == "" {
		t.Errorf("downloaded tree: %d bytes, entries %v", total, got)
	}
	if want := fmt.Sprintf("0 %d %x", len(small), sum[:4]); got["data/small.bin"] != want {
		t.Errorf("small.bin came back as %q, want %q", got["data/small.bin"], want)
	}
	after := peakRSSMB(t, s.pid())
	t.Logf("1 GB archive: upload %v (%.0f MB/s), download %v (%.0f MB/s); server VmHWM %d MB before, %d MB after",
		up.Round(time.Millisecond), float64(big)/1e6/up.Seconds(), down.Round(time.Millisecond), float64(big)/1e6/down.Seconds(), before, after)
	if after-before > 100 {
		t.Errorf("server peak RSS grew by %d MB over a 1 GB archive round trip; want bounded (< 100 MB)", after-before)
	}

	// gzip both ways on a small tree.
	var gzBody strings.Builder
	zw := gzip.NewWriter(&gzBody)
	io.Copy(zw, tarStream([]archiveFile{{name: "g/a.txt", size: 3, data: []byte("abc")}}, nil))
	zw.Close()
	req, _ = http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/workspace/gz", strings.NewReader(gzBody.String()))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("gzip upload: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Get(s.url + "/sandboxes/" + sb.ID + "/files/archive?path=/workspace/gz&gzip=true")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("gzip download: %v %v", err, resp)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(zr)
	names := []string{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	resp.Body.Close()
	if strings.Join(names, ",") != "g/,g/a.txt" {
		t.Errorf("gzip round trip entries %v", names)
	}
}

// TestArchive_TraversalRefused: entries escaping the target directory are
// refused with 400 and nothing lands outside it.
func TestArchive_TraversalRefused(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{})
	cases := map[string]func(*tar.Writer){
		"dotdot": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "../../etc/escaped", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			tw.Write([]byte("x"))
		},
		"absolute": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "/etc/escaped", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			tw.Write([]byte("x"))
		},
		"planted symlink": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "link", Linkname: "/etc", Typeflag: tar.TypeSymlink})
			tw.WriteHeader(&tar.Header{Name: "link/escaped", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
			tw.Write([]byte("x"))
		},
		"hard link out": func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "h", Linkname: "../../etc/passwd", Typeflag: tar.TypeLink})
		},
	}
	for name, entries := range cases {
		req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/workspace/t", tarStream(nil, entries))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, name, resp.StatusCode, data, 400, "BAD_REQUEST")
	}
	if r := s.exec(sb.ID, "ls /etc/escaped /workspace/escaped 2>&1 | grep -v 'No such' | wc -l"); strings.TrimSpace(r.Stdout) != "0" {
		t.Errorf("an archive entry escaped its directory: %q", r.Stdout)
	}
	for _, c := range []struct{ method, q string }{
		{"GET", "path=/nope"}, {"GET", "path=/etc/passwd"}, {"GET", ""}, {"PUT", ""}, {"GET", "path=/tmp&gzip=maybe"},
	} {
		req, _ := http.NewRequest(c.method, s.url+"/sandboxes/"+sb.ID+"/files/archive?"+c.q, strings.NewReader("not a tar"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("%s ?%s: %d %s, want 400 or 404", c.method, c.q, resp.StatusCode, data)
		}
	}
	req, _ := http.NewRequest("PUT", s.url+"/sandboxes/"+sb.ID+"/files/archive?path=/workspace/g", strings.NewReader(strings.Repeat("garbage!", 100)))
	resp, _ := http.DefaultClient.Do(req)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "garbage body", resp.StatusCode, data, 400, "BAD_REQUEST")
}
