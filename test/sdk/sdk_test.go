package sdk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	pyDir = filepath.Join(repoRoot, "sdk", "python")
	tsDir = filepath.Join(repoRoot, "sdk", "typescript")
)

// Sandboxes the suites leave running fail the test: each suite must clean up.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := sandboxCount(t)
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d sandbox(es) left running by the test (before: %d)", n-before, before)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPythonSDK(t *testing.T) {
	needLive(t)
	py := needTool(t, "python3")
	before := sandboxCount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := runLogged(t, ctx, pyDir, []string{"CI=true"}, py, "-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v")
	if !strings.Contains(out, "\nOK") {
		t.Errorf("python suite did not report OK")
	}
	checkNoLeak(t, before)
}

var tsBuild struct {
	once sync.Once
	err  error
	log  string
}

// buildTS installs the pinned devDependencies when missing (npm ci, as
// `make sdk-deps` does) and compiles the SDK and its tests once.
func buildTS(t *testing.T) {
	t.Helper()
	needTool(t, "node")
	npm := needTool(t, "npm")
	tsBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var log strings.Builder
		steps := [][]string{}
		if _, err := os.Stat(filepath.Join(tsDir, "node_modules", "typescript", "bin", "tsc")); err != nil {
			steps = append(steps, []string{npm, "ci", "--no-audit", "--no-fund"})
		}
		steps = append(steps,
			[]string{"node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"},
			[]string{"node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.test.json"})
		for _, s := range steps {
			out, err := command(ctx, tsDir, nil, s[0], s[1:]...).CombinedOutput()
			fmt.Fprintf(&log, "$ %s\n%s", strings.Join(s, " "), out)
			if err != nil {
				tsBuild.err = fmt.Errorf("%s: %v", strings.Join(s, " "), err)
				break
			}
		}
		tsBuild.log = log.String()
	})
	t.Log(tsBuild.log)
	if tsBuild.err != nil {
		t.Fatal(tsBuild.err)
	}
}

func TestTypeScriptSDK(t *testing.T) {
	needLive(t)
	buildTS(t)
	before := sandboxCount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files, err := filepath.Glob(filepath.Join(tsDir, "build", "test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no compiled tests in %s/build/test (err %v)", tsDir, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(tsDir, f)
	}
	args := append(nodeWebSocketFlags(ctx), "--test")
	out := runLogged(t, ctx, tsDir, []string{"CI=true"}, "node", append(args, files...)...)
	if !strings.Contains(out, "# fail 0") || strings.Contains(out, "# pass 0") {
		t.Errorf("node --test did not pass cleanly")
	}
	checkNoLeak(t, before)
}

// fence matches a fenced block whose info string is "LANG test".
func snippets(t *testing.T, readme, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + lang + " test\\s*\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("%s has no ```%s test blocks", readme, lang)
	}
	return out
}

func TestREADMESnippets_Python(t *testing.T) {
	needLive(t)
	py := needTool(t, "python3")
	before := sandboxCount(t)
	src, err := filepath.Abs(filepath.Join(pyDir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, code := range snippets(t, filepath.Join(pyDir, "README.md"), "python") {
		t.Run(fmt.Sprint("snippet", i+1), func(t *testing.T) {
			f := filepath.Join(dir, fmt.Sprintf("snippet%d.py", i+1))
			if err := os.WriteFile(f, []byte(code), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runLogged(t, ctx, dir, []string{"PYTHONPATH=" + src}, py, f)
		})
	}
	checkNoLeak(t, before)
}

func TestREADMESnippets_TypeScript(t *testing.T) {
	needLive(t)
	buildTS(t)
	before := sandboxCount(t)
	// The snippets compile inside the package so `import ... from "stacyvm"`
	// resolves to the SDK itself (package self-reference).
	dir := filepath.Join(tsDir, "build", "readme")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	blocks := snippets(t, filepath.Join(tsDir, "README.md"), "ts")
	for i, code := range blocks {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("snippet%d.ts", i+1)), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runLogged(t, ctx, tsDir, nil, "node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.readme.json")
	for i := range blocks {
		t.Run(fmt.Sprint("snippet", i+1), func(t *testing.T) {
			runLogged(t, ctx, tsDir, nil, "node", fmt.Sprintf("build/readme-out/snippet%d.js", i+1))
		})
	}
	checkNoLeak(t, before)
}

// needImage skips (or under CI=true fails) when a local image is missing.
func needImage(t *testing.T, image string) {
	t.Helper()
	if err := exec.Command("docker", "image", "inspect", image).Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("image %s missing (scripts/build-images.sh builds it)", image)
		}
		t.Skipf("image %s missing", image)
	}
}

func TestExamples_Python(t *testing.T) {
	needLive(t)
	needImage(t, "stacyvm/python")
	py := needTool(t, "python3")
	before := sandboxCount(t)
	src, err := filepath.Abs(filepath.Join(pyDir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot, "examples", "python")
	for _, ex := range []struct{ file, want string }{
		{"code_runner.py", "exit code 0"},
		{"agent_loop.py", "agent finished"},
	} {
		t.Run(ex.file, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out := runLogged(t, ctx, dir, []string{"PYTHONPATH=" + src}, py, ex.file)
			if !strings.Contains(out, ex.want) {
				t.Errorf("output lacks %q", ex.want)
			}
		})
	}
	checkNoLeak(t, before)
}

func TestExamples_TypeScript(t *testing.T) {
	needLive(t)
	needImage(t, "stacyvm/python")
	buildTS(t)
	before := sandboxCount(t)
	dir := filepath.Join(repoRoot, "examples", "typescript")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tsc, err := filepath.Abs(filepath.Join(tsDir, "node_modules", "typescript", "bin", "tsc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "stacyvm")); err != nil {
		// A file: dependency on ../../sdk/typescript: no registry needed.
		runLogged(t, ctx, dir, nil, needTool(t, "npm"), "ci", "--no-audit", "--no-fund")
	}
	runLogged(t, ctx, dir, nil, "node", tsc, "-p", "tsconfig.json")
	for _, ex := range []struct{ file, want string }{
		{"code_runner.js", "exit code 0"},
		{"agent_loop.js", "agent finished"},
	} {
		t.Run(ex.file, func(t *testing.T) {
			out := runLogged(t, ctx, dir, nil, "node", filepath.Join("build", ex.file))
			if !strings.Contains(out, ex.want) {
				t.Errorf("output lacks %q", ex.want)
			}
		})
	}
	checkNoLeak(t, before)
}

// nodeWebSocketFlags enables Node's global WebSocket where it is behind a
// flag (Node 20/21), so the SDK's execWs is tested with it there; Node 22+
// has it by default. On Node 18 the test passes the `ws` dev dependency as
// ClientOptions.WebSocket instead: the WebSocket test never skips.
func nodeWebSocketFlags(ctx context.Context) []string {
	probe := "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)"
	if command(ctx, tsDir, nil, "node", "-e", probe).Run() == nil {
		return nil
	}
	if command(ctx, tsDir, nil, "node", "--experimental-websocket", "-e", probe).Run() == nil {
		return []string{"--experimental-websocket"}
	}
	return nil
}
