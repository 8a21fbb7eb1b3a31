package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needDocker skips (or, with CI=true, fails) when the engine, the image or
// the server binary is missing, and returns the binary's path.
func needDocker(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", busybox).CombinedOutput(); err != nil {
		unavailable("docker engine or image %s unavailable: %s", busybox, strings.TrimSpace(string(out)))
	}
	bin := os.Getenv("STACYVM_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../bin/stacyvm")
	}
	if _, err := os.Stat(bin); err != nil {
		unavailable("server binary %s missing (make build): %v", bin, err)
	}
	return bin
}

// TestBenchQuick runs the whole harness with --quick against real Docker
// and checks that every section produced its figures and both outputs.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs against real Docker for ~60 s")
	}
	bin := needDocker(t)
	dir := t.TempDir()
	cfg, err := ParseFlags([]string{"--quick", "--server-bin", bin,
		"--out", filepath.Join(dir, "b.md"), "--json", filepath.Join(dir, "b.json"), "--notes", "profiling-notes.md"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	rep, err := Run(ctx, cfg, testLog{t})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("quick run took %s", time.Since(t0).Round(time.Second))
	got := map[string]*Section{}
	for _, s := range rep.Sections {
		got[s.Name] = s
	}
	for _, name := range Sections {
		s := got[name]
		switch {
		case s == nil:
			t.Errorf("section %s missing", name)
			continue
		case s.Error != "":
			t.Errorf("section %s: error %s", name, s.Error)
		case len(s.Rows) == 0:
			t.Errorf("section %s: no rows", name)
		}
		for _, r := range s.Rows {
			if r.Ours == nil {
				t.Errorf("section %s, %q: no figure for ours (notes: %v)", name, r.Metric, s.Notes)
			}
		}
	}
	md, err := os.ReadFile(cfg.Out)
	notes, nerr := os.ReadFile("profiling-notes.md")
	if err != nil || nerr != nil || !strings.Contains(string(md), "## Profiling notes\n\n"+string(notes)) {
		t.Errorf("markdown report missing or without the profiling notes: %v %v", err, nerr)
	}
	var back Report
	if b, err := os.ReadFile(cfg.JSON); err != nil || json.Unmarshal(b, &back) != nil || len(back.Sections) != len(Sections) {
		t.Errorf("JSON report unreadable or incomplete: %v", err)
	}
	leftover, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+benchLabel).Output()
	if ids := strings.Fields(string(leftover)); len(ids) > 0 {
		t.Errorf("baseline containers left behind: %v", ids)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := ParseFlags([]string{"--only", "exec, files", "--idle", "100", "--peer", "http://x/api/v1", "--out", "/tmp/x.md", "--quick"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Only) != 2 || cfg.Only[1] != "files" || cfg.Idle != 100 || cfg.Peer != "http://x/api/v1" || cfg.JSON != "/tmp/x.json" {
		t.Errorf("ParseFlags = %+v", cfg)
	}
	if full, _ := ParseFlags(nil, os.Stderr); !strings.HasPrefix(full.JSON, "bench/results/") || full.Out != "docs/benchmarks.md" || full.Runs != 200 || full.Idle != 500 {
		t.Errorf("defaults = %+v", full)
	}
}

// testLog sends the harness's progress to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
