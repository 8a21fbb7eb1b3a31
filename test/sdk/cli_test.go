package sdk

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func errorsAs(err error, target any) bool { return err != nil && errors.As(err, target) }

// cli runs the stacyvm binary against the live server.
func cli(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(live.bin, append([]string{"--server", live.url}, args...)...)
	cmd.Env = append(os.Environ(), "STACYVM_SERVER=", "STACYVM_API_KEY=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run stacyvm %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func mustCLI(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("stacyvm %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestCLI_CpLsLogsTemplates(t *testing.T) {
	needLive(t)
	before := sandboxCount(t)
	var sb struct{ ID string }
	if err := json.Unmarshal([]byte(mustCLI(t, nil, "spawn", "-o", "json", "--ttl", "5m", "--metadata", "sdk-test=cli")), &sb); err != nil {
		t.Fatal(err)
	}
	defer cli(t, nil, "kill", sb.ID)
	id := sb.ID

	// A tree with a big binary file, an executable and an empty directory.
	src := t.TempDir()
	big := make([]byte, 5<<20)
	_, _ = rand.Read(big)
	must(t, os.MkdirAll(filepath.Join(src, "proj", "sub", "empty"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "proj", "big.bin"), big, 0o644))
	must(t, os.WriteFile(filepath.Join(src, "proj", "sub", "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755))
	must(t, os.Symlink("sub/run.sh", filepath.Join(src, "proj", "link")))

	t.Run("file up and down", func(t *testing.T) {
		mustCLI(t, nil, "cp", filepath.Join(src, "proj", "big.bin"), id+":/data/big.bin")
		dst := filepath.Join(t.TempDir(), "back.bin")
		mustCLI(t, nil, "cp", id+":/data/big.bin", dst)
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("round trip of 5 MiB differs (err %v, %d bytes)", err, len(got))
		}
		// Into an existing directory: the name is kept.
		mustCLI(t, nil, "cp", filepath.Join(src, "proj", "sub", "run.sh"), id+":/data")
		if out := mustCLI(t, nil, "exec", id, "--", "/data/run.sh"); out != "ran\n" {
			t.Errorf("copied script printed %q (mode kept?)", out)
		}
	})
	t.Run("trailing slash means a directory", func(t *testing.T) {
		mustCLI(t, nil, "cp", filepath.Join(src, "proj", "sub", "run.sh"), id+":/fresh/dir/")
		if out := mustCLI(t, nil, "exec", id, "--", "/fresh/dir/run.sh"); out != "ran\n" {
			t.Errorf("cp to a new dir/: %q", out)
		}
		local := filepath.Join(t.TempDir(), "new") + string(filepath.Separator)
		mustCLI(t, nil, "cp", id+":/fresh/dir/run.sh", local)
		if _, err := os.Stat(filepath.Join(local, "run.sh")); err != nil {
			t.Errorf("cp to a new local dir/: %v", err)
		}
	})
	t.Run("stdin and stdout", func(t *testing.T) {
		mustCLI(t, []byte("piped\n"), "cp", "-", id+":/data/piped.txt")
		if out := mustCLI(t, nil, "cp", id+":/data/piped.txt", "-"); out != "piped\n" {
			t.Errorf("cp to stdout = %q", out)
		}
	})
	t.Run("directory tree up and down", func(t *testing.T) {
		// Into an existing directory: /work/proj; to a new path: that path.
		mustCLI(t, nil, "exec", id, "--", "mkdir", "-p", "/work")
		mustCLI(t, nil, "cp", filepath.Join(src, "proj"), id+":/work")
		mustCLI(t, nil, "cp", filepath.Join(src, "proj"), id+":/copy2")
		if out := mustCLI(t, nil, "exec", id, "--", "ls", "/copy2/sub"); !strings.Contains(out, "run.sh") {
			t.Errorf("cp to a new path did not create it as the copy: %q", out)
		}
		out := mustCLI(t, nil, "exec", id, "--shell", "--", "cd /work/proj && find . | sort && ./sub/run.sh && readlink link")
		for _, want := range []string{"./big.bin", "./sub/run.sh", "./sub/empty", "ran", "sub/run.sh"} {
			if !strings.Contains(out, want) {
				t.Errorf("tree in sandbox lacks %q:\n%s", want, out)
			}
		}
		back := t.TempDir()
		mustCLI(t, nil, "cp", id+":/work/proj", back)
		got, err := os.ReadFile(filepath.Join(back, "proj", "big.bin"))
		if err != nil || !bytes.Equal(got, big) {
			t.Errorf("big.bin after directory round trip differs (err %v)", err)
		}
		if fi, err := os.Stat(filepath.Join(back, "proj", "sub", "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
			t.Errorf("run.sh lost its exec bit: %v %v", fi, err)
		}
		if l, err := os.Readlink(filepath.Join(back, "proj", "link")); err != nil || l != "sub/run.sh" {
			t.Errorf("symlink after round trip: %q %v", l, err)
		}
		if fi, err := os.Stat(filepath.Join(back, "proj", "sub", "empty")); err != nil || !fi.IsDir() {
			t.Errorf("empty directory lost: %v", err)
		}
	})
	t.Run("ls", func(t *testing.T) {
		out := mustCLI(t, nil, "ls", id+":/data")
		for _, want := range []string{"MODE", "big.bin", "run.sh", "5242880"} {
			if !strings.Contains(out, want) {
				t.Errorf("ls lacks %q:\n%s", want, out)
			}
		}
		var fis []struct{ Path string }
		if err := json.Unmarshal([]byte(mustCLI(t, nil, "ls", id+":/data", "-o", "json")), &fis); err != nil || len(fis) < 3 {
			t.Errorf("ls -o json: %v %+v", err, fis)
		}
		if out := mustCLI(t, nil, "ls"); !strings.Contains(out, id) {
			t.Errorf("ls without args does not list sandboxes:\n%s", out)
		}
	})
	t.Run("logs", func(t *testing.T) {
		var lines []string
		if err := json.Unmarshal([]byte(mustCLI(t, nil, "logs", id, "-n", "5", "-o", "json")), &lines); err != nil {
			t.Errorf("logs -o json: %v", err)
		}
		mustCLI(t, nil, "logs", id)
	})
	t.Run("templates", func(t *testing.T) {
		out, errOut, code := cli(t, nil, "templates", "list")
		t.Logf("templates list: exit %d\n%s%s", code, out, errOut)
		if code != 0 {
			// A server without templates answers with a typed error: one line with the code.
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "error: NOT_FOUND") {
				t.Errorf("templates list error is not one clear line: %q", errOut)
			}
			return
		}
		mustCLI(t, nil, "templates", "create", "sdkcli", "--image", "stacyvm/busybox", "--ttl", "10m", "--description", "cli test")
		defer cli(t, nil, "templates", "delete", "sdkcli")
		if out := mustCLI(t, nil, "templates", "get", "sdkcli"); !strings.Contains(out, "stacyvm/busybox") {
			t.Errorf("templates get: %s", out)
		}
		var tsb struct{ ID string }
		if err := json.Unmarshal([]byte(mustCLI(t, nil, "templates", "spawn", "sdkcli", "--ttl", "2m", "-o", "json")), &tsb); err != nil || tsb.ID == "" {
			t.Fatalf("templates spawn: %v", err)
		}
		mustCLI(t, nil, "kill", tsb.ID)
	})
	t.Run("errors are one line with the code", func(t *testing.T) {
		for _, tc := range []struct {
			args     []string
			code     int
			contains string
		}{
			{[]string{"cp", id + ":/nope/file", t.TempDir()}, 1, "error: NOT_FOUND"},
			{[]string{"cp", "sb-000000000000:/x", t.TempDir()}, 1, "error: NOT_FOUND"},
			{[]string{"cp", "a", "b"}, 2, "exactly one of SRC and DST"},
			{[]string{"cp", id + ":relative", "x"}, 2, "must be absolute"},
			{[]string{"cp", "/does/not/exist", id + ":/x"}, 2, "no such file"},
			{[]string{"ls", "sb-000000000000:/"}, 1, "error: NOT_FOUND"},
			{[]string{"logs", id, "--lines", "-1"}, 2, "--lines"},
			{[]string{"shell", "sb-000000000000"}, 1, "error: NOT_FOUND"},
			{[]string{"shell", id, "--tty", "maybe"}, 2, "--tty must be"},
		} {
			_, errOut, code := cli(t, nil, tc.args...)
			first, _, _ := strings.Cut(errOut, "\n")
			if code != tc.code || !strings.Contains(first, tc.contains) || !strings.HasPrefix(first, "error: ") {
				t.Errorf("stacyvm %v: exit %d, stderr %q; want exit %d and a first line with %q", tc.args, code, errOut, tc.code, tc.contains)
			}
		}
	})
	t.Run("shell over the WebSocket", func(t *testing.T) {
		out, errOut, code := cli(t, []byte("echo hi from shell; echo oops >&2; exit 3\n"), "shell", id)
		if code != 3 || out != "hi from shell\n" || errOut != "oops\n" {
			t.Errorf("shell with piped input: exit %d, stdout %q, stderr %q; want 3, hi, oops", code, out, errOut)
		}
		out, _, code = cli(t, []byte("tty; stty size; exit 5\n"), "shell", "--tty=always", id)
		if code != 5 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "24 80") {
			t.Errorf("shell --tty=always: exit %d, output %q; want 5 with a pts and 24x80", code, out)
		}
		if out, _, code := cli(t, nil, "shell", id, "--", "echo", "$HOME"); code != 0 || out != "$HOME\n" {
			t.Errorf("shell -- echo $HOME (argv): exit %d, %q", code, out)
		}
	})
	t.Run("completion", func(t *testing.T) {
		if out := mustCLI(t, nil, "completion", "bash"); !strings.Contains(out, "__start_stacyvm") {
			t.Errorf("bash completion script looks wrong: %.200s", out)
		}
		out := mustCLI(t, nil, "__complete", "logs", "sb-")
		if !strings.Contains(out, id) {
			t.Errorf("sandbox id completion lacks %s:\n%s", id, out)
		}
	})
	mustCLI(t, nil, "kill", id)
	checkNoLeak(t, before)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
