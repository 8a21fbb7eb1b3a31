package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI_CertifyBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"UnknownRuntime": {"certify", "runtime", "lxc"},
		"NoRuntime":      {"certify", "runtime"},
		"BadFormat":      {"certify", "runtime", "kata", "--format", "html"},
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := runCLI(t, nil, args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "error:") {
				t.Errorf("%v: exit %d, stderr %q; want a usage error (2)", args, r.code, r.stderr)
			}
		})
	}
}

// TestCLI_CertifyKataIsNotInstalled: on a host without Kata, certify
// writes a report saying NOT INSTALLED (never PASS) and exits 0, since
// nothing failed; --output takes a file, not the global table|json.
func TestCLI_CertifyKataIsNotInstalled(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.json")
	r, _ := runCLI(t, []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, "certify", "runtime", "kata", "--format", "json", "--output", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no report (exit %d, stderr %q): %v", r.code, r.stderr, err)
	}
	var rep struct {
		Status   string
		Runtimes []struct{ Name, Status string }
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Runtimes) != 1 || rep.Runtimes[0].Status == "PASS" {
		t.Fatalf("report = %+v", rep)
	}
	if rep.Runtimes[0].Status == "NOT INSTALLED" && (r.code != 0 || rep.Status != "NOT INSTALLED") {
		t.Errorf("exit %d, overall %s; want 0 and NOT INSTALLED", r.code, rep.Status)
	}
}

func TestCLI_CertifyMatrix(t *testing.T) {
	r, _ := runCLI(t, nil, "certify", "matrix")
	if r.code != 0 || !strings.Contains(r.stdout, "| `proot` |") || !strings.Contains(r.stdout, "**no**") {
		t.Errorf("matrix: exit %d, stdout %q", r.code, r.stdout)
	}
}
