package certify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTimeoutScripts runs the "exec timeout kills" scripts with the host's
// /bin/sh and /proc, as a proot sandbox sees them. aliveScript names only
// the recorded pids that still run: not an unrelated "sleep 30" elsewhere on
// the machine (the check once counted those through ps and failed on proot
// whenever another program ran sleep 300), not a dead pid, not a zombie,
// not a pid now used by another program; and a missing pid file is an error.
func TestTimeoutScripts(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	alive := strings.ReplaceAll(aliveScript, timeoutPids, pids)
	run := func(script string) (string, int) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", script)
		var out strings.Builder
		cmd.Stdout = &out
		err := cmd.Run()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
	if out, code := run(alive); code != 2 || out != "" {
		t.Errorf("no pid file: %q exit %d, want exit 2", out, code)
	}

	start := func(name string, args ...string) *exec.Cmd {
		t.Helper()
		c := exec.Command(name, args...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	decoy := start("sleep", "30") // not recorded: must not count
	live := start("sleep", "31")
	zombie := start("sleep", "32")
	// Killed but not waited for: a zombie until the cleanup reaps it.
	syscall.Kill(zombie.Process.Pid, syscall.SIGKILL)
	other := start("tail", "-f", "/dev/null") // a reused pid: not sleep
	dead := start("true")
	dead.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(zombie.Process.Pid) + "/status")
		if strings.Contains(string(b), "\nState:\tZ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("killed sleep never became a zombie")
		}
		time.Sleep(10 * time.Millisecond)
	}
	list := ""
	for _, c := range []*exec.Cmd{live, zombie, other, dead} {
		list += strconv.Itoa(c.Process.Pid) + "\n"
	}
	if err := os.WriteFile(pids, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run(alive); code != 0 || out != strconv.Itoa(live.Process.Pid)+"\n" {
		t.Errorf("alive = %q exit %d, want only the live sleep %d (decoy %d)", out, code, live.Process.Pid, decoy.Process.Pid)
	}

	// timeoutScript itself records the shell and its background child.
	os.Remove(pids)
	sh := exec.Command("/bin/sh", "-c", strings.ReplaceAll(timeoutScript, timeoutPids, pids))
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	var out string
	for deadline := time.Now().Add(5 * time.Second); strings.Count(out, "\n") < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timeoutScript recorded %q, want two pids", out)
		}
		out, _ = run(alive)
	}
	if f := strings.Fields(out); f[0] != strconv.Itoa(sh.Process.Pid) {
		t.Errorf("first recorded pid %s, want the shell %d", f[0], sh.Process.Pid)
	}
	child, _ := strconv.Atoi(strings.Fields(out)[1])
	syscall.Kill(child, syscall.SIGKILL)
	sh.Process.Kill()
	sh.Wait()
	if out, code := run(alive); code != 0 || out != "" {
		t.Errorf("after killing both: alive = %q exit %d, want nothing", out, code)
	}
}
