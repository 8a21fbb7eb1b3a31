// Command stacyvm-agent runs inside every sandbox and serves the agent
// protocol (internal/agent) on a unix socket or TCP port. Started as PID 1
// (a container entrypoint) it also acts as init: it re-executes itself as
// the server child, reaps orphans and forwards termination signals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// version is stamped at link time (-ldflags "-X main.version=...").
var version = "dev"

// childEnv marks the server child of PID-1 mode so it does not become init again.
const childEnv = "STACYVM_AGENT_CHILD"

func main() {
	if os.Getpid() == 1 && os.Getenv(childEnv) != "1" {
		if len(os.Args) == 3 && os.Args[1] == guestFlag {
			os.Exit(runGuest(os.Args[0], os.Args[2])) // PID 1 of a microVM
		}
		os.Exit(runInit(os.Args))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	listen  string
	root    string
	workdir string
	wrapper string
	level   slog.Level
	version bool
	// tokenFile names a file holding the shared secret tcp clients must
	// present (see agent.TokenListener); tokenEnv is the same secret from
	// the environment. Either is required on a non-loopback tcp address.
	tokenFile string
	envToken  string
}

// tokenEnv carries the tcp listener's shared secret when --token-file is
// not used. The agent removes it from its own environment at startup, so
// execs never inherit it.
const tokenEnv = "STACYVM_AGENT_TOKEN"

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fl := flag.NewFlagSet("stacyvm-agent", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&o.listen, "listen", "", "unix:///path/agent.sock, tcp://127.0.0.1:PORT, vsock://PORT or virtio-serial:///dev/vportNpM|PORTNAME (required)")
	fl.StringVar(&o.root, "root", "/", "directory served as the sandbox's /")
	fl.StringVar(&o.workdir, "workdir", "/workspace", "default working directory of execs, created if missing")
	fl.StringVar(&o.wrapper, "exec-wrapper", "", "absolute host path of a program that runs every exec as WRAPPER WORKDIR ARGV... (the proot provider)")
	fl.StringVar(&o.tokenFile, "token-file", "", "file holding the shared secret tcp:// clients must present (or env "+tokenEnv+"); required on a non-loopback tcp address")
	fl.BoolVar(&o.version, "version", false, "print the version and exit")
	fl.TextVar(&o.level, "log-level", slog.LevelInfo, "debug, info, warn or error (debug logs every exec)")
	if err := fl.Parse(args); err != nil {
		return o, err
	}
	if fl.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fl.Args())
	}
	if !o.version && o.listen == "" {
		return o, errors.New("--listen is required")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "stacyvm-agent:", err)
		return 2
	}
	if o.version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	// The log is the sandbox's console: in a container every line goes
	// through the runtime's log driver, so per-exec lines are debug only.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	// A lost controlling terminal is no reason to stop serving.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The secret is read once; execs inherit the agent's environment.
	o.envToken = os.Getenv(tokenEnv)
	os.Unsetenv(tokenEnv)
	if err := serve(ctx, o, log); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, o options, log *slog.Logger) error {
	if err := makeWorkdir(o.root, o.workdir); err != nil {
		// Not fatal: a read-only image may lack it; execs naming it fail clearly.
		log.Warn("cannot create default workdir", "workdir", o.workdir, "err", err)
	}
	srv, err := agent.NewServer(agent.ServerOptions{Root: o.root, DefaultWorkdir: o.workdir, ExecWrapper: o.wrapper, Version: version, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	token, err := readToken(o)
	if err != nil {
		return err
	}
	l, err := listen(o.listen)
	if err != nil {
		return err
	}
	if l, err = guardListener(l, o.listen, token); err != nil {
		return err
	}
	log.Info("agent listening", "listen", o.listen, "root", o.root, "version", version, "pid", os.Getpid(), "token", token != "")
	err = srv.Serve(ctx, l)
	log.Info("agent stopped")
	return err
}

// makeWorkdir creates workdir (a sandbox path) under root with mode 0755.
func makeWorkdir(root, workdir string) error {
	if !strings.HasPrefix(workdir, "/") {
		return fmt.Errorf("workdir %q must be absolute", workdir)
	}
	if filepath.Clean(root) == "/" {
		return os.MkdirAll(workdir, 0o755)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	rel := strings.TrimPrefix(filepath.Clean(workdir), "/")
	if rel == "" {
		return nil
	}
	return r.MkdirAll(rel, 0o755)
}

// listen opens the listener named by a unix:// or tcp:// address.
func listen(addr string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		p := strings.TrimPrefix(addr, "unix://")
		if p == "" {
			return nil, errors.New("--listen unix:// needs a path")
		}
		// A socket left by a previous agent would make bind fail; anything
		// else at that path is not ours to delete.
		if fi, err := os.Lstat(p); err == nil {
			if fi.Mode()&fs.ModeSocket == 0 {
				return nil, fmt.Errorf("%s exists and is not a socket", p)
			}
			if err := os.Remove(p); err != nil {
				return nil, err
			}
		}
		l, err := net.Listen("unix", p)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(p, 0o660); err != nil {
			// gVisor refuses chmod on sockets it creates on the host
			// (--host-uds=create). A socket in a directory only its owner
			// can enter is unreachable for others whatever its mode.
			if fi, serr := os.Stat(filepath.Dir(p)); serr != nil || fi.Mode().Perm()&0o077 != 0 {
				l.Close()
				return nil, err
			}
		}
		return l, nil
	case strings.HasPrefix(addr, "tcp://"):
		return net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
	case strings.HasPrefix(addr, "vsock://"):
		// A microVM's agent channel on virtio-vsock (Firecracker).
		return listenVsock(strings.TrimPrefix(addr, "vsock://"))
	case strings.HasPrefix(addr, "virtio-serial://"):
		// A microVM's agent channel: one byte stream, multiplexed.
		return agent.ListenVirtioSerial(strings.TrimPrefix(addr, "virtio-serial://"), nil)
	}
	return nil, fmt.Errorf("--listen %q: want unix:///path, tcp://host:port, vsock://PORT or virtio-serial://PORT", addr)
}

// readToken returns the tcp listener's shared secret: the first line of
// --token-file, else the value taken from the environment, else "".
func readToken(o options) (string, error) {
	if o.tokenFile == "" {
		return strings.TrimSpace(o.envToken), nil
	}
	b, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", o.tokenFile)
	}
	return tok, nil
}

// guardListener puts the shared-secret handshake in front of a tcp
// listener. Without a token only loopback tcp addresses are served, as
// before; unix, vsock and virtio-serial listeners are reachable only by the
// host and never take a token.
func guardListener(l net.Listener, addr, token string) (net.Listener, error) {
	if !strings.HasPrefix(addr, "tcp://") {
		if token != "" {
			l.Close()
			return nil, errors.New("--token-file and " + tokenEnv + " apply to tcp:// listeners only")
		}
		return l, nil
	}
	if token == "" {
		if !loopbackAddr(strings.TrimPrefix(addr, "tcp://")) {
			l.Close()
			return nil, fmt.Errorf("refusing to serve the agent without a token on non-loopback %s: set --token-file or %s", addr, tokenEnv)
		}
		return l, nil
	}
	tl, err := agent.TokenListener(l, token)
	if err != nil {
		l.Close()
		return nil, err
	}
	return tl, nil
}

// loopbackAddr reports whether host:port names only the loopback interface.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
