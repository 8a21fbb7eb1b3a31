package proot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// RemoveAll destroys every proot sandbox under dataDir (the provider's data
// dir, i.e. <server data dir>/proot), whichever server created it: kills
// its agent and everything in its cgroup or session, unmounts its root and
// removes its directory and cgroups. It is for test harnesses and
// uninstalls, where a data dir is about to be deleted: unlike containers,
// proot sandboxes have no engine that could find them afterwards.
func RemoveAll(ctx context.Context, dataDir string) error {
	ents, err := os.ReadDir(filepath.Join(dataDir, "sb"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	g := probeCgroups("stacyvm-proot")
	var first error
	for _, e := range ents {
		id := e.Name()
		if !e.IsDir() || validID(id) != nil {
			continue
		}
		dir := filepath.Join(dataDir, "sb", id)
		if b, err := os.ReadFile(filepath.Join(dir, "handle.json")); err == nil {
			if pid := pidOf(b); pid > 1 && agentRoot(pid) == filepath.Join(dir, "root") {
				hostproc.KillSession(pid)
				hostproc.WaitGone(ctx, pid)
			}
		}
		if g != nil {
			g.kill(ctx, id)
			g.remove(id)
		}
		unmountRoot(filepath.Join(dir, "root"))
		if err := forceRemoveAll(dir); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// pidOf reads the pid of a handle.json.
func pidOf(b []byte) int {
	var st state
	if json.Unmarshal(b, &st) != nil {
		return 0
	}
	return st.PID
}

// agentRoot returns the --root argument of pid's command line, "" if none.
func agentRoot(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--root" {
			return args[i+1]
		}
	}
	return ""
}
