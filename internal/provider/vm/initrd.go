package vm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The guest's initramfs is three cpio archives back to back (the kernel
// unpacks concatenated archives in order): the base built by
// scripts/build-vm-assets.sh (busybox, modules, /init), the agent binary
// as /stacyvm/agent, and the sandbox's /stacyvm/config.json. The first two
// are joined once per agent build and cached; each sandbox gets a copy with
// its own config appended, so the agent never has to be baked into an
// image's root disk and is always the server's own version.

// cpioEntry is one regular file of a newc archive.
type cpioEntry struct {
	name string
	mode uint32 // permission bits
	data []byte
}

// writeCPIO writes a newc ("070701") archive of files and its trailer.
func writeCPIO(w io.Writer, files []cpioEntry) error {
	var buf bytes.Buffer
	ino := 1
	put := func(name string, mode uint32, data []byte) {
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		ino++
		buf.WriteString(name)
		buf.WriteByte(0)
		pad4(&buf)
		buf.Write(data)
		pad4(&buf)
	}
	for _, f := range files {
		put(f.name, 0o100000|f.mode&0o7777, f.data)
	}
	put("TRAILER!!!", 0, nil)
	_, err := w.Write(buf.Bytes())
	return err
}

func pad4(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

// agentInitrd returns <dir>/initrd-<hash>.img, the base initramfs followed
// by the agent, building it once per (base, agent) content.
func agentInitrd(dir, base, agentPath string) (string, error) {
	baseData, err := os.ReadFile(base)
	if err != nil {
		return "", fmt.Errorf("read base initramfs: %w", err)
	}
	agentData, err := os.ReadFile(agentPath)
	if err != nil {
		return "", fmt.Errorf("read agent binary: %w", err)
	}
	h := sha256.New()
	h.Write(baseData)
	h.Write(agentData)
	path := filepath.Join(dir, "initrd-"+hex.EncodeToString(h.Sum(nil)[:8])+".img")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var out bytes.Buffer
	out.Write(baseData)
	pad4(&out) // an uncompressed archive must start 4-byte aligned
	if err := writeCPIO(&out, []cpioEntry{{name: "stacyvm/agent", mode: 0o755, data: agentData}}); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".initrd-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// sandboxInitrd writes dst: the cached agent initramfs plus config.
func sandboxInitrd(dst, cached string, config []byte) error {
	src, err := os.Open(cached)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, src)
	if err == nil {
		var b bytes.Buffer
		b.Write(make([]byte, (4-n%4)%4))
		err = writeCPIO(&b, []cpioEntry{{name: "stacyvm/config.json", mode: 0o600, data: config}})
		if err == nil {
			_, err = f.Write(b.Bytes())
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
