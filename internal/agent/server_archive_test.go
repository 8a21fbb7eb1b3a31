package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func readTar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "dir"
		case tar.TypeSymlink:
			out[h.Name] = "-> " + h.Linkname
		default:
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		}
	}
}

func TestArchive_RoundTrip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		a := startAgent(t)
		ctx := context.Background()
		data := makeTar(t, []tarEntry{
			{name: "./", typ: tar.TypeDir, mode: 0o755},
			{name: "a.txt", typ: tar.TypeReg, body: "hello", mode: 0o640},
			{name: "deep/er/b.bin", typ: tar.TypeReg, body: strings.Repeat("\x00", 3<<20) + "end"},
			{name: "deep/link", typ: tar.TypeSymlink, link: "../a.txt"},
			{name: "deep/hard", typ: tar.TypeLink, link: "a.txt"},
			{name: "fifo", typ: tar.TypeFifo},
		})
		var body io.Reader = bytes.NewReader(data)
		if gz {
			body = gzipped(t, data)
		}
		res, err := a.client.WriteArchive(ctx, "/w/x", body, gz)
		if err != nil {
			t.Fatalf("gzip=%v: WriteArchive: %v", gz, err)
		}
		want := agent.ArchiveResult{Files: 2, Dirs: 0, Symlinks: 1, Links: 1, Bytes: 5 + 3<<20 + 3, Skipped: 1}
		if res != want {
			t.Errorf("gzip=%v: result %+v, want %+v", gz, res, want)
		}
		if fi, err := os.Stat(filepath.Join(a.root, "w/x/a.txt")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("a.txt: %v %v, want mode 640", fi, err)
		}
		rc, err := a.client.ReadArchive(ctx, "/w/x", gz)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = rc
		if gz {
			r = gunzipped(t, rc)
		}
		got := readTar(t, r)
		rc.Close()
		if got["a.txt"] != "hello" || got["deep/link"] != "-> ../a.txt" || got["deep/"] != "dir" ||
			len(got["deep/er/b.bin"]) != 3<<20+3 || got["deep/hard"] != "hello" {
			t.Errorf("gzip=%v: archive read back: %d entries, a.txt=%q link=%q", gz, len(got), got["a.txt"], got["deep/link"])
		}
	}
}

func TestArchive_RefusesEscapes(t *testing.T) {
	a := startAgent(t)
	ctx := context.Background()
	outside := filepath.Join(a.root, "outside")
	os.MkdirAll(outside, 0o755)
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"dotdot", []tarEntry{{name: "../outside/x", typ: tar.TypeReg, body: "x"}}},
		{"dotdot inside", []tarEntry{{name: "a/../../outside/x", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []tarEntry{{name: "/outside/x", typ: tar.TypeReg, body: "x"}}},
		{"through planted symlink", []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "../outside"},
			{name: "l/x", typ: tar.TypeReg, body: "x"}}},
		{"through absolute symlink", []tarEntry{
			{name: "l2", typ: tar.TypeSymlink, link: "/outside"},
			{name: "l2/x", typ: tar.TypeReg, body: "x"}}},
		{"hard link out", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}}},
	}
	for _, tt := range tests {
		_, err := a.client.WriteArchive(ctx, "/target", bytes.NewReader(makeTar(t, tt.entries)), false)
		if !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: err %v, want Invalid", tt.name, err)
		}
		if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
			t.Fatalf("%s: an entry escaped the target directory", tt.name)
		}
	}
	// A file entry replaces a planted symlink instead of writing through it.
	os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644)
	data := makeTar(t, []tarEntry{
		{name: "s", typ: tar.TypeSymlink, link: "../outside/keep"},
		{name: "s", typ: tar.TypeReg, body: "new"},
	})
	if _, err := a.client.WriteArchive(ctx, "/target2", bytes.NewReader(data), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "keep")); string(b) != "keep" {
		t.Errorf("a file entry wrote through a symlink: outside/keep = %q", b)
	}
	// Garbage is a bad request, not a 500.
	if _, err := a.client.WriteArchive(ctx, "/t3", strings.NewReader(strings.Repeat("garbage!", 200)), false); !errs.Is(err, errs.Invalid) {
		t.Errorf("garbage body: %v, want Invalid", err)
	}
	if _, err := a.client.ReadArchive(ctx, "/nope", false); !errs.Is(err, errs.NotFound) {
		t.Errorf("archive of a missing dir: %v, want NotFound", err)
	}
}
