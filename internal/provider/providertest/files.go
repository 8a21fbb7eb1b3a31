package providertest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// testFiles covers every agent file operation on one sandbox.
func (s *suite) testFiles(t *testing.T) {
	_, c := s.sandbox(t)
	ctx := s.ctx(t)
	put := func(t *testing.T, path string, data []byte, mode uint32) {
		t.Helper()
		if err := c.WriteFile(ctx, path, mode, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("WriteFile(%s): %v", path, err)
		}
	}
	get := func(t *testing.T, path string) []byte {
		t.Helper()
		rc, _, err := c.ReadFile(ctx, path)
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", path, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("ReadFile(%s) body: %v", path, err)
		}
		return b
	}

	t.Run("WriteReadStat", func(t *testing.T) {
		t.Parallel()
		put(t, "/workspace/rw/deep/a.txt", []byte("hello"), 0o644)
		if got := get(t, "/workspace/rw/deep/a.txt"); string(got) != "hello" {
			t.Errorf("read back %q, want %q", got, "hello")
		}
		fi, err := c.Stat(ctx, "/workspace/rw/deep/a.txt")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Path != "/workspace/rw/deep/a.txt" || fi.Size != 5 || fi.Mode != "644" || fi.IsDir || fi.ModTime.IsZero() {
			t.Errorf("Stat = %+v, want path, size 5, mode 644, a file, a mod time", fi)
		}
		if fi, err := c.Stat(ctx, "/workspace/rw/deep"); err != nil || !fi.IsDir {
			t.Errorf("Stat(dir) = %+v, %v; want a directory", fi, err)
		}
		put(t, "/workspace/rw/deep/a.txt", []byte("replaced"), 0o600)
		if got := get(t, "/workspace/rw/deep/a.txt"); string(got) != "replaced" {
			t.Errorf("after overwrite read %q, want %q", got, "replaced")
		}
		if err := c.WriteFile(ctx, "/workspace/rw/empty", 0o644, nil, 0); err != nil {
			t.Errorf("write empty file: %v", err)
		} else if got := get(t, "/workspace/rw/empty"); len(got) != 0 {
			t.Errorf("empty file read %d bytes", len(got))
		}
	})
	t.Run("Binary", func(t *testing.T) {
		t.Parallel()
		var data []byte
		for i := range 3 * 256 {
			data = append(data, byte(255-i%256))
		}
		put(t, "/workspace/bin/all-bytes", data, 0o644)
		if got := get(t, "/workspace/bin/all-bytes"); !bytes.Equal(got, data) {
			t.Errorf("binary round trip: got %d bytes, want %d identical", len(got), len(data))
		}
	})
	t.Run("Large20MB", func(t *testing.T) {
		t.Parallel()
		data := make([]byte, 20<<20)
		rand.NewChaCha8([32]byte{7}).Read(data)
		start := time.Now()
		put(t, "/workspace/large.bin", data, 0o644)
		w := time.Since(start)
		rc, size, err := c.ReadFile(ctx, "/workspace/large.bin")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != int64(len(data)) || (size >= 0 && size != int64(len(data))) {
			t.Fatalf("read %d bytes (size header %d), %v; want %d", n, size, err, len(data))
		}
		if !bytes.Equal(h.Sum(nil), sha256Sum(data)) {
			t.Errorf("20 MB file content differs after round trip")
		}
		t.Logf("20 MB: write %v, write+read %v", w, time.Since(start))
	})
	t.Run("List", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/workspace/ls/b.txt", "/workspace/ls/a.txt", "/workspace/ls/sub/c.txt"} {
			put(t, p, []byte("x"), 0o644)
		}
		got, err := c.List(ctx, "/workspace/ls")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, fi := range got {
			names = append(names, fi.Path)
		}
		want := []string{"/workspace/ls/a.txt", "/workspace/ls/b.txt", "/workspace/ls/sub"}
		if !slices.Equal(names, want) {
			t.Errorf("List = %v, want %v", names, want)
		}
		if len(got) == 3 && !got[2].IsDir {
			t.Errorf("List entry %s is not a directory", got[2].Path)
		}
	})
	t.Run("GlobDoubleStar", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/workspace/g/x.txt", "/workspace/g/d1/y.txt", "/workspace/g/d1/d2/z.txt", "/workspace/g/d1/w.md"} {
			put(t, p, []byte("x"), 0o644)
		}
		got, err := c.Glob(ctx, "/workspace/g/**/*.txt")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"/workspace/g/d1/d2/z.txt", "/workspace/g/d1/y.txt", "/workspace/g/x.txt"}
		if !slices.Equal(got, want) {
			t.Errorf("Glob(**/*.txt) = %v, want %v", got, want)
		}
		if got, err := c.Glob(ctx, "/workspace/g/nothing-*"); err != nil || got == nil || len(got) != 0 {
			t.Errorf("Glob(no match) = %#v, %v; want an empty, non-nil list", got, err)
		}
	})
	t.Run("MoveAndChmod", func(t *testing.T) {
		t.Parallel()
		put(t, "/workspace/mv/src.txt", []byte("moved"), 0o644)
		if err := c.Move(ctx, "/workspace/mv/src.txt", "/workspace/mv/new/parent/dst.txt"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		if got := get(t, "/workspace/mv/new/parent/dst.txt"); string(got) != "moved" {
			t.Errorf("after move read %q", got)
		}
		_, err := c.Stat(ctx, "/workspace/mv/src.txt")
		wantClass(t, "Stat(moved-away source)", err, errs.NotFound)
		wantClass(t, "Move(missing)", c.Move(ctx, "/workspace/mv/missing", "/workspace/mv/x"), errs.NotFound)
		for _, tc := range []struct{ in, want string }{{"600", "600"}, {"0755", "755"}} {
			if err := c.Chmod(ctx, "/workspace/mv/new/parent/dst.txt", tc.in); err != nil {
				t.Fatalf("Chmod(%s): %v", tc.in, err)
			}
			if fi, _ := c.Stat(ctx, "/workspace/mv/new/parent/dst.txt"); fi.Mode != tc.want {
				t.Errorf("after Chmod(%s) mode = %q, want %q", tc.in, fi.Mode, tc.want)
			}
		}
		wantClass(t, "Chmod(bad mode)", c.Chmod(ctx, "/workspace/mv/new/parent/dst.txt", "rwx"), errs.Invalid)
		wantClass(t, "Chmod(missing)", c.Chmod(ctx, "/workspace/mv/missing", "600"), errs.NotFound)
	})
	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		put(t, "/workspace/del/a/b.txt", []byte("x"), 0o644)
		put(t, "/workspace/del/f.txt", []byte("x"), 0o644)
		if err := c.Delete(ctx, "/workspace/del/f.txt", false); err != nil {
			t.Fatalf("Delete(file): %v", err)
		}
		_, err := c.Stat(ctx, "/workspace/del/f.txt")
		wantClass(t, "Stat(deleted)", err, errs.NotFound)
		wantClass(t, "Delete(missing)", c.Delete(ctx, "/workspace/del/f.txt", false), errs.NotFound)
		if err := c.Delete(ctx, "/workspace/del/a", false); err == nil {
			t.Errorf("non-recursive Delete of a non-empty dir succeeded")
		}
		if err := c.Delete(ctx, "/workspace/del/a", true); err != nil {
			t.Errorf("recursive Delete: %v", err)
		}
		if _, err := c.Stat(ctx, "/workspace/del/a"); errs.ClassOf(err) != errs.NotFound {
			t.Errorf("Stat after recursive delete = %v, want NotFound", err)
		}
	})
	t.Run("ErrorClasses", func(t *testing.T) {
		t.Parallel()
		put(t, "/workspace/errs/file", []byte("x"), 0o644)
		_, _, err := c.ReadFile(ctx, "/workspace/errs/missing")
		wantClass(t, "ReadFile(missing)", err, errs.NotFound)
		_, err = c.Stat(ctx, "/workspace/errs/missing")
		wantClass(t, "Stat(missing)", err, errs.NotFound)
		_, err = c.List(ctx, "/workspace/errs/missing")
		wantClass(t, "List(missing)", err, errs.NotFound)
		_, err = c.Stat(ctx, "relative/path")
		wantClass(t, "Stat(relative)", err, errs.Invalid)
		err = c.WriteFile(ctx, "relative.txt", 0o644, strings.NewReader("x"), 1)
		wantClass(t, "WriteFile(relative)", err, errs.Invalid)
		if rc, _, err := c.ReadFile(ctx, "/workspace/errs"); err == nil {
			rc.Close()
			t.Errorf("ReadFile(directory) succeeded")
		}
		if _, err := c.List(ctx, "/workspace/errs/file"); err == nil {
			t.Errorf("List(file) succeeded")
		}
	})
	t.Run("TraversalStaysInside", func(t *testing.T) {
		t.Parallel()
		name := "stacy-trav-" + NewSandboxID()
		put(t, "/workspace/../../../../tmp/"+name, []byte("inside"), 0o644)
		if got := get(t, "/tmp/"+name); string(got) != "inside" {
			t.Errorf("file written through /workspace/../.. not found at /tmp/%s inside the sandbox", name)
		}
		if _, err := os.Stat("/tmp/" + name); err == nil {
			os.Remove("/tmp/" + name)
			t.Errorf("a traversal path wrote to the host's /tmp/%s", name)
		}
	})
	t.Run("SymlinksStayInside", func(t *testing.T) {
		t.Parallel()
		secret := "stacy-host-secret-" + NewSandboxID()
		if err := os.WriteFile("/tmp/"+secret, []byte("HOST-SECRET"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove("/tmp/" + secret)
		escaped := "stacy-sym-escape-" + NewSandboxID()
		out, errOut, res := run(t, c, agent.ExecRequest{Argv: sh("mkdir -p sym && cd sym && " +
			"ln -s /tmp/" + secret + " abs-secret && ln -s ../../../../../../../../../../tmp/" + secret + " rel-secret && " +
			"ln -s ../../../../../../../../../../tmp up && ln -s /tmp abs-tmp")})
		if res.ExitCode != 0 {
			t.Fatalf("creating symlinks: %q %q", out, errOut)
		}
		for _, p := range []string{"/workspace/sym/abs-secret", "/workspace/sym/rel-secret"} {
			if rc, _, err := c.ReadFile(ctx, p); err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				if string(b) == "HOST-SECRET" {
					t.Errorf("ReadFile(%s) read the host's file through a symlink", p)
				}
			}
		}
		for _, p := range []string{"/workspace/sym/up/" + escaped, "/workspace/sym/abs-tmp/" + escaped} {
			c.WriteFile(ctx, p, 0o644, strings.NewReader("x"), 1)
			if _, err := os.Stat("/tmp/" + escaped); err == nil {
				os.Remove("/tmp/" + escaped)
				t.Errorf("WriteFile(%s) wrote to the host's /tmp through a symlink", p)
			}
		}
	})
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
