package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurity_SandboxCannotReachHostOrSiblings runs two sandboxes of one
// server (bridge network, the most connected mode) and looks, from inside
// sandbox A, for everything on the host that would let it out or into B:
// B's agent control socket (a per-sandbox host dir bind-mounted into B
// only), the server's data dir and SQLite file, the Docker socket, the
// server's credentials, and the agent binary all sandboxes share.
func TestSecurity_SandboxCannotReachHostOrSiblings(t *testing.T) {
	s := keyedServer(t)
	var a, b sandboxJSON
	for _, sb := range []*sandboxJSON{&a, &b} {
		if code, data := s.kcall("POST", "/sandboxes", map[string]any{"image": "stacyvm/busybox", "network": "bridge"}, sb); code != 201 {
			t.Fatalf("spawn: %d %s", code, data)
		}
	}
	run := func(id, cmd string) execJSON {
		t.Helper()
		var r execJSON
		if code, data := s.kcall("POST", "/sandboxes/"+id+"/exec", map[string]any{"command": cmd}, &r); code != 200 {
			t.Fatalf("exec %q in %s: %d %s", cmd, id, code, data)
		}
		return r
	}

	// The paths are real on the host: the test looks for the right thing.
	bSock := filepath.Join(s.dataDir, "docker", "sb", b.ID, "agent.sock")
	db := filepath.Join(s.dataDir, "stacyvm.db")
	for _, p := range []string{bSock, db} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("host path %s: %v (did the layout change?)", p, err)
		}
	}

	// (a) B's control socket: not at its host path, not anywhere in A; A's
	// run dir holds only A's own socket, and what A leaves there B does
	// not see. B's agent listens on no TCP port A could reach instead.
	for _, p := range []string{bSock, filepath.Dir(bSock), filepath.Join(s.dataDir, "docker", "sb")} {
		if r := run(a.ID, "test -e '"+p+"'"); r.ExitCode == 0 {
			t.Errorf("sandbox A sees the host path %s", p)
		}
	}
	sockets := run(a.ID, `find / \( -path /proc -o -path /sys \) -prune -o -type s -print 2>/dev/null`).Stdout
	if strings.TrimSpace(sockets) != "/.stacyvm/run/agent.sock" {
		t.Errorf("unix sockets visible in sandbox A = %q, want only its own /.stacyvm/run/agent.sock", sockets)
	}
	if r := run(a.ID, "ls -A /.stacyvm/run"); strings.TrimSpace(r.Stdout) != "agent.sock" {
		t.Errorf("A's run dir = %q, want only agent.sock", r.Stdout)
	}
	run(a.ID, "touch /.stacyvm/run/left-by-a")
	if r := run(b.ID, "ls -A /.stacyvm/run"); strings.Contains(r.Stdout, "left-by-a") {
		t.Errorf("B sees a file A put in its run dir: %q", r.Stdout)
	}
	if r := run(b.ID, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == \"0A\"'"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("something listens on TCP in sandbox B (the agent must be unix-socket only): %q", r.Stdout)
	}

	// (b) The server's data dir and database.
	if r := run(a.ID, "test -e '"+s.dataDir+"' || test -e '"+db+"'"); r.ExitCode == 0 {
		t.Errorf("sandbox A sees the data dir %s", s.dataDir)
	}
	if r := run(a.ID, `find / \( -path /proc -o -path /sys \) -prune -o -name 'stacyvm.db*' -print 2>/dev/null`); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("a stacyvm.db inside sandbox A: %q", r.Stdout)
	}

	// (c) The Docker socket, at its usual paths or anywhere (the socket
	// search above found none).
	if r := run(a.ID, "test -e /var/run/docker.sock || test -e /run/docker.sock"); r.ExitCode == 0 {
		t.Errorf("the Docker socket is visible in sandbox A")
	}

	// The server's credentials never reach a sandbox's environment.
	if r := run(a.ID, "cat /proc/1/environ | tr '\\0' '\\n'; env"); strings.Contains(r.Stdout, previewKey) || strings.Contains(r.Stdout, "STACYVM_AUTH") {
		t.Errorf("the server's API key or auth settings are in the sandbox environment")
	}

	// The agent binary is shared by every sandbox: it is mounted read-only
	// (a write would also fail as "text file busy" while the agent runs, so
	// the mount options are what is checked).
	if r := run(a.ID, `awk '$2 == "/.stacyvm/bin/stacyvm-agent" {print $4}' /proc/mounts`); !strings.HasPrefix(r.Stdout, "ro,") {
		t.Errorf("the shared agent binary is mounted with %q, want read-only", r.Stdout)
	}
	if r := run(a.ID, "echo x >> /.stacyvm/bin/stacyvm-agent"); r.ExitCode == 0 {
		t.Errorf("sandbox A appended to the shared agent binary")
	}
	if r := run(b.ID, "echo ok"); r.ExitCode != 0 || r.Stdout != "ok\n" {
		t.Errorf("sandbox B after A's attempts: %+v", r)
	}
}
