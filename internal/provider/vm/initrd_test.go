package vm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitrd_ConcatenatedArchivesUnpack checks the per-sandbox initramfs
// (base, agent, config as three archives) with GNU cpio, the format the
// kernel's unpacker follows.
func TestInitrd_ConcatenatedArchivesUnpack(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	dir := t.TempDir()
	// A base archive of odd length, like a gzip stream would be.
	var base bytes.Buffer
	if err := writeCPIO(&base, []cpioEntry{{name: "init", mode: 0o755, data: []byte("#!/bin/sh\n")}}); err != nil {
		t.Fatal(err)
	}
	base.WriteString("x") // misalign: the next archive must be padded to 4 bytes
	basePath := filepath.Join(dir, "base.img")
	agentPath := filepath.Join(dir, "agent")
	os.WriteFile(basePath, base.Bytes(), 0o644)
	os.WriteFile(agentPath, []byte("AGENT-BINARY"), 0o755)
	cached, err := agentInitrd(filepath.Join(dir, "cache"), basePath, agentPath)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := agentInitrd(filepath.Join(dir, "cache"), basePath, agentPath)
	if again != cached {
		t.Errorf("second agentInitrd = %s, want the cached %s", again, cached)
	}
	dst := filepath.Join(dir, "sandbox.img")
	if err := sandboxInitrd(dst, cached, []byte(`{"hostname":"sb-1"}`)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dst)
	// Split where each archive starts and let cpio extract the last two.
	i := bytes.Index(data, []byte("070701"))
	j := bytes.Index(data[i+1:], []byte("TRAILER!!!"))
	k := bytes.Index(data[i+1+j:], []byte("070701"))
	rest := data[i+1+j+k:]
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	for len(rest) > 0 {
		cmd := exec.Command("cpio", "-idm", "--quiet")
		cmd.Dir = out
		cmd.Stdin = bytes.NewReader(rest)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cpio: %v %s", err, b)
		}
		n := bytes.Index(rest, []byte("TRAILER!!!"))
		next := bytes.Index(rest[n:], []byte("070701"))
		if next < 0 {
			break
		}
		rest = rest[n+next:]
	}
	if b, _ := os.ReadFile(filepath.Join(out, "stacyvm", "agent")); string(b) != "AGENT-BINARY" {
		t.Errorf("agent = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "stacyvm", "config.json")); !strings.Contains(string(b), "sb-1") {
		t.Errorf("config = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(out, "stacyvm", "agent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("agent mode = %v, %v; want 0755", fi, err)
	}
	// The kernel only recognises an uncompressed archive at a 4-byte
	// aligned offset.
	for off := 0; ; {
		n := bytes.Index(data[off:], []byte("TRAILER!!!"))
		if n < 0 {
			break
		}
		next := bytes.Index(data[off+n:], []byte("070701"))
		if next < 0 {
			break
		}
		off += n + next
		if off%4 != 0 {
			t.Errorf("an archive starts at offset %d, not 4-byte aligned", off)
		}
	}
}
