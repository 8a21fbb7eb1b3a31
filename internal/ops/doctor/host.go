package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/config"
)

// Disk space thresholds for the data directory.
const (
	diskFailBytes = 1 << 30 // 1 GiB
	diskWarnBytes = 5 << 30 // 5 GiB
)

// writableDir checks dir (or its nearest existing parent, which the server
// would create it under) is a writable directory.
func writableDir(dir string) error {
	d := dir
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("no existing parent of %s", dir)
		}
		d = parent
	}
	f, err := os.CreateTemp(d, ".stacyvm-doctor-*")
	if err != nil {
		return fmt.Errorf("%s is not writable by this user: %v", d, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func existingParent(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

func (r *Report) diskCheck(cfg *config.Config) {
	dir := existingParent(cfg.DataDir)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		r.add("host", "disk space", Fail, err.Error(), "check that data_dir is on a mounted filesystem; "+docDisk)
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	detail := fmt.Sprintf("%.1f GiB free under %s", float64(free)/(1<<30), dir)
	switch {
	case free < diskFailBytes:
		r.add("host", "disk space", Fail, detail+" (need at least 1 GiB)", "free space under "+dir+" (docker system df; docker image prune) or move data_dir; "+docDisk)
	case free < diskWarnBytes:
		r.add("host", "disk space", Warn, detail+" (below 5 GiB)", "free space under "+dir+"; "+docDisk)
	default:
		r.add("host", "disk space", Pass, detail, "")
	}
}

// minPlausible is a date before which the clock is certainly wrong (TTLs,
// audit times and token expiry all depend on it).
var minPlausible = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (r *Report) clockCheck(ctx context.Context, now time.Time) {
	if now.Before(minPlausible) {
		r.add("host", "clock", Fail, "system time "+now.UTC().Format(time.RFC3339)+" is implausible", "timedatectl set-ntp true; "+docClock)
		return
	}
	detail := "system time " + now.UTC().Format(time.RFC3339)
	if path, err := exec.LookPath("timedatectl"); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		out, err := exec.CommandContext(cctx, path, "show", "-p", "NTPSynchronized", "--value").Output()
		cancel()
		if err == nil {
			if strings.TrimSpace(string(out)) != "yes" {
				r.add("host", "clock", Warn, detail+"; NTP is not synchronised", "timedatectl set-ntp true; "+docClock)
				return
			}
			detail += "; NTP synchronised"
		}
	} else {
		detail += "; NTP state unknown (no timedatectl)"
	}
	r.add("host", "clock", Pass, detail, "")
}

func (r *Report) portCheck(ctx context.Context, cfg *config.Config) {
	addr := cfg.Server.Addr()
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		r.add("host", "port "+addr, Pass, "free", "")
		return
	}
	if v, ok := ServerAt(ctx, addr); ok {
		r.add("host", "port "+addr, Pass, "in use by a running stacyvm server (version "+v+")", "")
		return
	}
	_, port, _ := net.SplitHostPort(addr)
	r.add("host", "port "+addr, Fail, oneLine(err.Error()),
		fmt.Sprintf("ss -ltnp 'sport = :%s' shows the process holding it; stop it or change server.port; %s", port, docPort))
}

// ServerAt reports whether a stacyvm server answers /api/v1/live at addr.
func ServerAt(ctx context.Context, addr string) (string, bool) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", "http://"+net.JoinHostPort(host, port)+"/api/v1/live", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var body struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(b, &body) != nil || body.Status != "alive" {
		return "", false
	}
	return body.Version, true
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
