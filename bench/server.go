package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is one `stacyvm serve` process started by the harness on a fresh
// data dir and a free loopback port.
type Server struct {
	// URL is the API root.
	URL     string
	dataDir string
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
}

// StartServer starts bin serve with the docker provider, network none (the
// baseline's --network none) and extra KEY=VALUE env, and waits until it is
// live.
func StartServer(ctx context.Context, bin string, extraEnv ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "svb") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STACYVM_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"STACYVM_SERVER_HOST=127.0.0.1",
		"STACYVM_SERVER_PORT="+strconv.Itoa(port),
		"STACYVM_DATA_DIR="+dir,
		"STACYVM_DATABASE_PATH="+filepath.Join(dir, "stacyvm.db"),
		"STACYVM_PROVIDERS_DEFAULT=docker",
		"STACYVM_DEFAULTS_IMAGE="+busybox,
		"STACYVM_PROVIDERS_DOCKER_PULL=never",
		"STACYVM_PROVIDERS_DOCKER_NETWORK_MODE=none",
		"STACYVM_LOGGING_LEVEL=warn",
		"STACYVM_LOGGING_FORMAT=text",
	)
	env = append(env, extraEnv...)
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d/api/v1", port), dataDir: dir, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-s.done:
			s.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("server exited at start; log:\n%s", s.LogTail())
		default:
		}
		resp, err := http.Get(s.URL + "/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tail := s.LogTail()
	s.Stop(context.WithoutCancel(ctx))
	return nil, fmt.Errorf("server did not become live; log:\n%s", tail)
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// ServerID reads the id the server labels its containers with.
func (s *Server) ServerID() string {
	b, _ := os.ReadFile(filepath.Join(s.dataDir, "server-id"))
	return strings.TrimSpace(string(b))
}

// LogTail returns the last 4 KB of the server log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.log.Name())
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// Stop terminates the server (SIGTERM, then SIGKILL after 15 s), removes
// every container labelled with its server id, and deletes its data dir.
func (s *Server) Stop(ctx context.Context) {
	id := s.ServerID()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if id != "" {
		removeByLabel(ctx, "stacyvm.server_id="+id)
	}
	s.log.Close()
	os.RemoveAll(s.dataDir)
}

// ProcStats are a process's memory and CPU figures from /proc.
type ProcStats struct {
	RSSKB   int64   `json:"vm_rss_kb"`
	HWMKB   int64   `json:"vm_hwm_kb"`
	CPUSecs float64 `json:"cpu_seconds"` // utime+stime
}

// Proc reads the server's VmRSS, VmHWM and CPU time.
func (s *Server) Proc() ProcStats { return readProc(s.PID()) }

func readProc(pid int) ProcStats {
	var ps ProcStats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				ps.RSSKB = v
			case "VmHWM:":
				ps.HWMKB = v
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the parenthesised command name; utime and stime are
		// fields 14 and 15 (1-based) in clock ticks (USER_HZ = 100 on Linux).
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				ps.CPUSecs = (ut + st) / 100
			}
		}
	}
	return ps
}

// destroyAll destroys ids on api with at most par requests in flight.
func destroyAll(ctx context.Context, api *API, ids []string, par int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			api.Destroy(dctx, id)
		}()
	}
	wg.Wait()
}
