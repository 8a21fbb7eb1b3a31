package certify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// server is a temporary `stacyvm serve` on a free loopback port with its
// own data dir, every certified runtime enabled and nothing else.
type server struct {
	cmd     *exec.Cmd
	dir     string
	base    string
	client  *apiclient.Client
	log     *syncBuffer
	done    chan struct{}
	created []string // sandbox ids, destroyed on stop
	mu      sync.Mutex
}

// serverStartTimeout bounds the wait for /health.
const serverStartTimeout = 60 * time.Second

// startServer runs bin serve with a config made only of environment
// variables: its working dir and HOME are the temp dir, so no stacyvm.yaml
// of the caller is read.
func startServer(ctx context.Context, bin string, runtimes []string) (*server, error) {
	if bin == "" {
		return nil, errors.New("no stacyvm binary to run the temporary server")
	}
	// Short: sockets live under it (<dir>/<provider>/sb/<id>/agent.sock).
	dir, err := os.MkdirTemp("", "svc-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"STACYVM_DATA_DIR=" + dir + "/d",
		"STACYVM_SERVER_HOST=127.0.0.1",
		"STACYVM_SERVER_PORT=" + strconv.Itoa(port),
		"STACYVM_PROVIDERS_DEFAULT=" + runtimes[0],
		"STACYVM_LOGGING_LEVEL=warn",
		"STACYVM_PROVIDERS_DOCKER_ENABLED=false",
		"STACYVM_PROVIDERS_DOCKER_PULL=never",
		"STACYVM_PROVIDERS_GVISOR_PULL=never",
		"STACYVM_PROVIDERS_KATA_PULL=never",
		// Reconcile and the reaper must not race the checks.
		"STACYVM_DEFAULTS_RECONCILE_INTERVAL=0s",
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env = append(env, "DOCKER_HOST="+h)
	}
	for _, r := range runtimes {
		env = append(env, "STACYVM_PROVIDERS_"+strings.ToUpper(r)+"_ENABLED=true")
	}
	s := &server{dir: dir, base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &syncBuffer{max: 64 << 10}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = env
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }() // owned by s: ends with the process
	s.client = apiclient.New(s.base, "", apiclient.WithUserAgent("stacyvm-certify"))

	wctx, cancel := context.WithTimeout(ctx, serverStartTimeout)
	defer cancel()
	for {
		hctx, hcancel := context.WithTimeout(wctx, 2*time.Second)
		_, err := s.client.Health(hctx)
		hcancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			out := s.log.String()
			s.stop()
			return nil, fmt.Errorf("temporary server exited: %s", lastLines(out, 8))
		case <-wctx.Done():
			out := s.log.String()
			s.stop()
			return nil, fmt.Errorf("temporary server did not answer within %s: %s", serverStartTimeout, lastLines(out, 8))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// track records a sandbox to destroy on stop, whatever the checks did.
func (s *server) track(id string) {
	s.mu.Lock()
	s.created = append(s.created, id)
	s.mu.Unlock()
}

// stop destroys leftover sandboxes, then SIGTERMs the server (SIGKILL after
// 20 s) and removes its data dir.
func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.mu.Lock()
	ids := s.created
	s.mu.Unlock()
	select {
	case <-s.done:
	default:
		for _, id := range ids {
			s.client.Destroy(ctx, id)
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// get decodes GET base+path into out.
func (s *server) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/v1"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return decodeJSON(resp.Body, out)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// syncBuffer is a bounded, goroutine-safe log sink (keeps the last bytes).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
