package app

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// agentFS holds the static agent when `make build` put it there.
//
//go:embed embedded
var agentFS embed.FS

// agentBinary returns a host path of the stacyvm-agent binary that providers
// bind-mount into sandboxes: the embedded copy written (once per content)
// under dataDir/bin, else a stacyvm-agent next to this executable, else one
// on PATH.
func agentBinary(dataDir string) (string, error) {
	data, err := fs.ReadFile(agentFS, "embedded/stacyvm-agent")
	if err == nil && len(data) > 0 {
		sum := sha256.Sum256(data)
		dir := filepath.Join(dataDir, "bin")
		dst := filepath.Join(dir, "stacyvm-agent-"+hex.EncodeToString(sum[:6]))
		if st, err := os.Stat(dst); err == nil && st.Size() == int64(len(data)) {
			return dst, nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
		tmp, err := os.CreateTemp(dir, ".agent-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(data); err != nil {
			tmp.Close()
			return "", err
		}
		if err := tmp.Chmod(0o755); err != nil {
			tmp.Close()
			return "", err
		}
		if err := tmp.Close(); err != nil {
			return "", err
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return "", err
		}
		return dst, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "stacyvm-agent")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("stacyvm-agent"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("stacyvm-agent binary not found: build with `make build` (it embeds the agent), or put stacyvm-agent next to stacyvm or on PATH")
}
