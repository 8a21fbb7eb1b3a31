package agent_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

func (a *testAgent) write(t *testing.T, p string, mode uint32, data string) {
	t.Helper()
	if err := a.client.WriteFile(ctxT(t), p, mode, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("WriteFile(%s): %v", p, err)
	}
}

func (a *testAgent) read(t *testing.T, p string) (string, error) {
	t.Helper()
	rc, _, err := a.client.ReadFile(ctxT(t), p)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func wantClass(t *testing.T, what string, err error, want ...errs.Class) {
	t.Helper()
	got := errs.ClassOf(err)
	for _, w := range want {
		if err != nil && got == w {
			return
		}
	}
	t.Errorf("%s: err = %v (class %v), want class in %v", what, err, got, want)
}

func TestFiles_WriteReadRoundTrip(t *testing.T) {
	a := startAgent(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct{ name, path, data string }{
		{"text with parents created", "/a/b/c/hello.txt", "hello\n"},
		{"binary, every byte value", "/bin.dat", string(all)},
		{"empty file", "/empty", ""},
		{"replace existing", "/a/b/c/hello.txt", "second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.write(t, tt.path, 0o644, tt.data)
			got, err := a.read(t, tt.path)
			if err != nil || got != tt.data {
				t.Errorf("read back %q, %v; want %q", got, err, tt.data)
			}
			host, _ := os.ReadFile(filepath.Join(a.root, tt.path))
			if string(host) != tt.data {
				t.Errorf("host file holds %q, want %q", host, tt.data)
			}
		})
	}
	if fi, _ := os.Stat(filepath.Join(a.root, "a", "b")); fi == nil || !fi.IsDir() {
		t.Errorf("parent /a/b not created")
	}
	ents, _ := os.ReadDir(filepath.Join(a.root, "a", "b", "c"))
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
}

func TestFiles_FiftyMegabytesStream(t *testing.T) {
	a := startAgent(t)
	const size = 50 << 20
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.Reader, size), h)
	if err := a.client.WriteFile(ctxT(t), "/big", 0o600, src, size); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	rc, n, err := a.client.ReadFile(ctxT(t), "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	copied, err := io.Copy(h, rc)
	if err != nil || copied != size || n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Errorf("read %d bytes (Content-Length %d), err %v, hash equal %v; want %d", copied, n, err, bytes.Equal(h.Sum(nil), want), size)
	}
}

func TestFiles_ModeAppliedExactlyRegardlessOfUmask(t *testing.T) {
	a := startAgent(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tt := range []struct {
		mode uint32
		want string
	}{{0o644, "644"}, {0o600, "600"}, {0o755, "755"}, {0o777, "777"}, {0o4755, "4755"}} {
		a.write(t, "/m", tt.mode, "x")
		fi, err := a.client.Stat(ctxT(t), "/m")
		if err != nil || fi.Mode != tt.want {
			t.Errorf("mode %o: Stat = %+v, %v; want mode %s", tt.mode, fi, err, tt.want)
		}
		host, _ := os.Stat(filepath.Join(a.root, "m"))
		if host.Mode().Perm() != os.FileMode(tt.mode&0o777) {
			t.Errorf("mode %o: host perm %v", tt.mode, host.Mode())
		}
	}
}

func TestFiles_Errors(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/dir/full/f", 0o644, "x")
	a.write(t, "/file", 0o644, "x")
	ctx := ctxT(t)
	readErr := func(p string) error { _, err := a.read(t, p); return err }
	tests := []struct {
		name string
		err  error
		want errs.Class
	}{
		{"read missing", readErr("/nope"), errs.NotFound},
		{"read directory", readErr("/dir"), errs.Invalid},
		{"read relative path", readErr("dir/f"), errs.Invalid},
		{"read empty path", readErr(""), errs.Invalid},
		{"write onto directory", a.client.WriteFile(ctx, "/dir", 0o644, strings.NewReader("x"), 1), errs.Invalid},
		{"write under a file", a.client.WriteFile(ctx, "/file/sub", 0o644, strings.NewReader("x"), 1), errs.Invalid},
		{"delete missing", a.client.Delete(ctx, "/nope", false), errs.NotFound},
		{"delete non-empty dir without recursive", a.client.Delete(ctx, "/dir", false), errs.Conflict},
		{"delete root", a.client.Delete(ctx, "/", true), errs.Invalid},
		{"list file", func() error { _, err := a.client.List(ctx, "/file"); return err }(), errs.Invalid},
		{"list missing", func() error { _, err := a.client.List(ctx, "/nope"); return err }(), errs.NotFound},
		{"stat missing", func() error { _, err := a.client.Stat(ctx, "/nope"); return err }(), errs.NotFound},
		{"move missing source", a.client.Move(ctx, "/nope", "/x"), errs.NotFound},
		{"move relative", a.client.Move(ctx, "file", "/x"), errs.Invalid},
		{"chmod bad mode", a.client.Chmod(ctx, "/file", "rwx"), errs.Invalid},
		{"chmod mode out of range", a.client.Chmod(ctx, "/file", "17777"), errs.Invalid},
		{"chmod missing", a.client.Chmod(ctx, "/nope", "644"), errs.NotFound},
		{"glob relative", func() error { _, err := a.client.Glob(ctx, "*.txt"); return err }(), errs.Invalid},
		{"glob bad pattern", func() error { _, err := a.client.Glob(ctx, "/[a"); return err }(), errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantClass(t, tt.name, tt.err, tt.want) })
	}
	if err := a.client.Delete(ctx, "/dir", false); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty delete message = %v, want it to say not empty", err)
	}
}

func TestFiles_JSONBodyOverOneMebibyteIsTooLarge(t *testing.T) {
	a := startAgent(t)
	err := a.client.Move(ctxT(t), "/"+strings.Repeat("a", 2<<20), "/b")
	wantClass(t, "2 MiB move request", err, errs.TooLarge)
}

func TestFiles_DeleteRecursive(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/tree/a/b/c", 0o644, "x")
	a.write(t, "/single", 0o644, "x")
	ctx := ctxT(t)
	if err := a.client.Delete(ctx, "/tree", true); err != nil {
		t.Fatal(err)
	}
	if err := a.client.Delete(ctx, "/single", false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tree", "single"} {
		if _, err := os.Lstat(filepath.Join(a.root, p)); !os.IsNotExist(err) {
			t.Errorf("/%s still exists: %v", p, err)
		}
	}
}

func TestFiles_ListSortedWithInfo(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/d/b.txt", 0o600, "bb")
	a.write(t, "/d/a.txt", 0o644, "a")
	a.write(t, "/d/C/x", 0o644, "")
	if err := os.Symlink("a.txt", filepath.Join(a.root, "d", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(a.root, "d", "broken")); err != nil {
		t.Fatal(err)
	}
	got, err := a.client.List(ctxT(t), "/d")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		path  string
		size  int64
		mode  string
		isDir bool
	}{
		{"/d/C", -1, "755", true},
		{"/d/a.txt", 1, "644", false},
		{"/d/b.txt", 2, "600", false},
		{"/d/broken", -1, "777", false},
		{"/d/link", 1, "644", false},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.path || g.Mode != w.mode || g.IsDir != w.isDir || (w.size >= 0 && g.Size != w.size) || g.ModTime.IsZero() {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	empty, err := a.client.List(ctxT(t), "/d/C/x/..")
	if err != nil || len(empty) != 1 {
		t.Errorf("List(/d/C) = %v, %v", empty, err)
	}
}

func TestFiles_StatAndChmodModeStrings(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/f", 0o644, "abc")
	ctx := ctxT(t)
	for _, tt := range []struct{ in, want string }{{"0600", "600"}, {"755", "755"}, {"1777", "1777"}, {"0", "0"}, {"0644", "644"}} {
		if err := a.client.Chmod(ctx, "/f", tt.in); err != nil {
			t.Fatalf("Chmod %s: %v", tt.in, err)
		}
		fi, err := a.client.Stat(ctx, "/f")
		if err != nil || fi.Mode != tt.want || fi.Size != 3 || fi.IsDir || fi.Path != "/f" {
			t.Errorf("after chmod %s: Stat = %+v, %v; want mode %s", tt.in, fi, err, tt.want)
		}
	}
	root, err := a.client.Stat(ctx, "/")
	if err != nil || !root.IsDir || root.Path != "/" {
		t.Errorf("Stat(/) = %+v, %v", root, err)
	}
}

func TestFiles_MoveCreatesParents(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/src", 0o644, "payload")
	ctx := ctxT(t)
	if err := a.client.Move(ctx, "/src", "/new/deep/dst"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.read(t, "/new/deep/dst"); err != nil || got != "payload" {
		t.Errorf("moved file = %q, %v", got, err)
	}
	if _, err := a.client.Stat(ctx, "/src"); errs.ClassOf(err) != errs.NotFound {
		t.Errorf("source after move: %v, want NotFound", err)
	}
	wantClass(t, "move into itself", a.client.Move(ctx, "/new", "/new/deep/x"), errs.Invalid)
}

func TestFiles_TraversalStaysInsideRoot(t *testing.T) {
	a := startAgent(t)
	outside := filepath.Join(filepath.Dir(a.root), "outside-"+filepath.Base(a.root))
	t.Cleanup(func() { os.RemoveAll(outside) })
	for _, p := range []string{"/../../x", "/a/../../../x", "/../" + filepath.Base(outside) + "/y"} {
		a.write(t, p, 0o644, "in")
		got, err := a.read(t, p)
		if err != nil || got != "in" {
			t.Errorf("read %s = %q, %v", p, got, err)
		}
	}
	for _, host := range []string{filepath.Join(a.root, "x"), filepath.Join(a.root, filepath.Base(outside), "y")} {
		if _, err := os.Stat(host); err != nil {
			t.Errorf("expected %s inside root: %v", host, err)
		}
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Errorf("traversal created %s outside root", outside)
	}
}

func TestFiles_SymlinksCannotEscapeRoot(t *testing.T) {
	a := startAgent(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(a.root, secret)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"abs": secret, "rel": rel, "absdir": secretDir, "reldir": filepath.Dir(rel)}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(a.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	for _, p := range []string{"/abs", "/rel", "/absdir/secret", "/reldir/secret"} {
		got, err := a.read(t, p)
		if strings.Contains(got, "host secret") {
			t.Fatalf("read %s leaked host content", p)
		}
		wantClass(t, "read "+p, err, errs.Invalid, errs.NotFound, errs.Forbidden)
		if err != nil && strings.Contains(err.Error(), secretDir) {
			t.Errorf("error leaks host path: %v", err)
		}
		fi, err := a.client.Stat(ctx, p)
		if err == nil && fi.Path != p {
			t.Errorf("Stat(%s).Path = %s", p, fi.Path)
		}
		_ = a.client.WriteFile(ctx, p, 0o644, strings.NewReader("pwned"), 5)
		_ = a.client.Chmod(ctx, p, "777")
	}
	_ = a.client.Delete(ctx, "/absdir/secret", false)
	_ = a.client.Delete(ctx, "/reldir/secret", false)
	_ = a.client.Move(ctx, "/reldir/secret", "/stolen")
	b, err := os.ReadFile(secret)
	if err != nil || string(b) != "host secret" {
		t.Errorf("host file changed through a symlink: %q, %v", b, err)
	}
	if fi, _ := os.Stat(secret); fi == nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("host file mode changed through a symlink: %v", fi)
	}
	got, err := a.client.Glob(ctx, "/*dir/**")
	for _, p := range got {
		if strings.Contains(p, "secret") {
			t.Errorf("glob went through an escaping symlink: %v, %v", got, err)
		}
	}
}

func TestFiles_StatUnderAFileIsInvalid(t *testing.T) {
	a := startAgent(t)
	a.write(t, "/f", 0o644, "x")
	_, err := a.client.Stat(ctxT(t), "/f/x")
	wantClass(t, "stat under a file", err, errs.Invalid, errs.NotFound)
}

func TestGlob_ThroughClient(t *testing.T) {
	a := startAgent(t)
	for _, p := range []string{"/src/main.go", "/src/pkg/a/a.go", "/src/pkg/a/a_test.go", "/src/pkg/b.txt", "/README.md"} {
		a.write(t, p, 0o644, "")
	}
	if err := os.Symlink("/src", filepath.Join(a.root, "src", "pkg", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(a.root, "src", "up")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"/src/**/*.go", []string{"/src/main.go", "/src/pkg/a/a.go", "/src/pkg/a/a_test.go"}},
		{"/src/**/main.go", []string{"/src/main.go"}},
		{"/src/pkg/**/a.go", []string{"/src/pkg/a/a.go"}},
		{"/**/*_test.go", []string{"/src/pkg/a/a_test.go"}},
		{"/*.md", []string{"/README.md"}},
		{"/src/pkg/*", []string{"/src/pkg/a", "/src/pkg/b.txt", "/src/pkg/loop"}},
		{"/nothing/**", []string{}},
		{"/*.none", []string{}},
		{"/src/../README.md", []string{"/README.md"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got, err := a.client.Glob(ctxT(t), tt.pattern)
			if err != nil || got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("Glob(%s) = %#v, %v; want %#v", tt.pattern, got, err, tt.want)
			}
		})
	}
}

// TestFiles_HostRootFollowsAbsoluteSymlinks covers the real-sandbox mode
// (Root "/"), where images rely on absolute symlinks such as
// /usr/bin/awk -> /etc/alternatives/awk.
func TestFiles_HostRootFollowsAbsoluteSymlinks(t *testing.T) {
	a := startAgentAt(t, "/")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	a.write(t, target, 0o640, "real")
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := a.read(t, filepath.Join(dir, "link"))
	if err != nil || got != "real" {
		t.Errorf("read through absolute symlink = %q, %v", got, err)
	}
	fi, err := a.client.Stat(ctxT(t), filepath.Join(dir, "link"))
	if err != nil || fi.Mode != "640" || fi.Path != filepath.Join(dir, "link") {
		t.Errorf("Stat(link) = %+v, %v", fi, err)
	}
	matches, err := a.client.Glob(ctxT(t), dir+"/**")
	if err != nil || len(matches) != 3 {
		t.Errorf("Glob(%s/**) = %v, %v; want dir, link, target", dir, matches, err)
	}
	var out strings.Builder
	res, err := a.client.Exec(ctxT(t), agent.ExecRequest{Argv: []string{"cat", "link"}, Workdir: dir}, &out, nil)
	if err != nil || res.ExitCode != 0 || out.String() != "real" {
		t.Errorf("exec cat in %s = %q, %+v, %v", dir, out.String(), res, err)
	}
}
