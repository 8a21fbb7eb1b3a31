package proot

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestMakeRoot_CopyFallback: without overlayfs (not root) the sandbox gets
// a copy: links are copied as links (never followed on the host), and
// writes in the copy leave the image untouched.
func TestMakeRoot_CopyFallback(t *testing.T) {
	image := t.TempDir()
	if err := os.MkdirAll(filepath.Join(image, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(image, "etc", "conf"), []byte("orig"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(image, "abs-link")); err != nil {
		t.Fatal(err)
	}
	p := &Provider{log: slog.New(slog.DiscardHandler)}
	dir := t.TempDir()
	mode, err := p.makeRoot(context.Background(), image, dir, false)
	if err != nil || mode != rootCopy {
		t.Fatalf("makeRoot = %q, %v; want a copy", mode, err)
	}
	root := filepath.Join(dir, "root")
	if target, err := os.Readlink(filepath.Join(root, "abs-link")); err != nil || target != "/etc/passwd" {
		t.Errorf("abs-link in the copy = %q, %v; want the link itself", target, err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "conf"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(image, "etc", "conf")); string(b) != "orig" {
		t.Errorf("the image changed to %q after a write in the copy", b)
	}
	// prepareRoot never writes through the image's links on the host.
	if err := os.Symlink("/etc", filepath.Join(root, "workspace")); err != nil {
		t.Fatal(err)
	}
	if err := prepareRoot(root); err == nil {
		t.Errorf("prepareRoot accepted /workspace -> /etc")
	}
}
