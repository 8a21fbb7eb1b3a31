package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// maxJSONBody bounds JSON request bodies; file bodies are streamed and unbounded.
const maxJSONBody = 1 << 20

// shutdownGrace bounds how long Serve waits for in-flight requests once its
// context is done; their contexts are already cancelled, so execs die fast.
const shutdownGrace = 2 * time.Second

// ServerOptions configures a Server.
type ServerOptions struct {
	// Root is the directory seen as "/" by file operations: "/" in real
	// sandboxes, a host directory for the mock provider (then no path or
	// symlink may escape it).
	Root string
	// DefaultWorkdir is the working directory of execs that name none; "/" if empty.
	DefaultWorkdir string
	// Version is reported by /v1/ping.
	Version string
	// Logger receives one line per exec and every internal error; slog.Default() if nil.
	Logger *slog.Logger
	// ExecWrapper, when set, is an absolute host path that runs every
	// exec as `ExecWrapper WORKDIR ARGV...` (the proot provider's per-exec
	// proot, which resolves the program inside the sandbox's root).
	//
	// A one-shot exec gives the wrapper a status pipe as fd 3: a wrapper
	// that writes the command's own exit code there ("N\n") lets the exec
	// end when that command ends, even while the wrapper itself still runs
	// (proot waits for every background process the command left behind).
	// A wrapper that never writes it is waited for, as any other process.
	ExecWrapper string
}

// Server is the in-sandbox side of the agent protocol. It is safe for
// concurrent use; every request is independent.
type Server struct {
	opts ServerOptions
	fs   fsys
	log  *slog.Logger
	// spawnMu serialises process starts (not their runs). Under PRoot a
	// multithreaded tracee's vfork+exec corrupts children, which is why
	// the proot provider runs this agent on the host with an ExecWrapper;
	// serialised starts cost about a millisecond each and keep any other
	// ptrace-based setup from racing them.
	spawnMu sync.Mutex

	procOnce sync.Once  // creates procs (server_proc.go)
	procs    *procTable // background processes
}

// NewServer validates opts and opens the file-system root.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if !filepath.IsAbs(opts.Root) {
		return nil, errs.New(errs.Invalid, "agent root %q must be an absolute path", opts.Root)
	}
	opts.Root = filepath.Clean(opts.Root)
	if opts.ExecWrapper != "" && !filepath.IsAbs(opts.ExecWrapper) {
		return nil, errs.New(errs.Invalid, "exec wrapper %q must be an absolute path", opts.ExecWrapper)
	}
	if opts.DefaultWorkdir == "" {
		opts.DefaultWorkdir = "/"
	}
	wd, err := cleanPath(opts.DefaultWorkdir)
	if err != nil {
		return nil, err
	}
	opts.DefaultWorkdir = wd
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fsys, err := openFS(opts.Root)
	if err != nil {
		return nil, err
	}
	return &Server{opts: opts, fs: fsys, log: opts.Logger}, nil
}

// Close releases the file-system root. Requests in flight may fail afterwards.
func (s *Server) Close() error { return s.fs.Close() }

// Handler returns the HTTP handler serving every /v1 endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", s.handlePing)
	mux.HandleFunc("POST /v1/exec", s.handleExec)
	mux.HandleFunc("GET /v1/files", s.handleRead)
	mux.HandleFunc("PUT /v1/files", s.handleWrite)
	mux.HandleFunc("DELETE /v1/files", s.handleDelete)
	mux.HandleFunc("GET /v1/files/list", s.handleList)
	mux.HandleFunc("GET /v1/files/stat", s.handleStat)
	mux.HandleFunc("GET /v1/files/glob", s.handleGlob)
	mux.HandleFunc("POST /v1/files/move", s.handleMove)
	mux.HandleFunc("POST /v1/files/chmod", s.handleChmod)
	mux.HandleFunc("GET /v1/files/archive", s.handleArchiveRead)
	mux.HandleFunc("PUT /v1/files/archive", s.handleArchiveWrite)
	mux.HandleFunc("GET /v1/files/watch", s.handleWatch)
	mux.HandleFunc("GET /v1/ports/{port}/connect", s.handlePortConnect)
	mux.HandleFunc("POST /v1/session", s.handleSession)
	mux.HandleFunc("POST /v1/processes", s.handleProcStart)
	mux.HandleFunc("GET /v1/processes", s.handleProcList)
	mux.HandleFunc("GET /v1/processes/{id}", s.handleProcGet)
	mux.HandleFunc("DELETE /v1/processes/{id}", s.handleProcKill)
	mux.HandleFunc("GET /v1/processes/{id}/output", s.handleProcOutput)
	mux.HandleFunc("POST /v1/processes/{id}/stdin", s.handleProcStdin)
	mux.HandleFunc("POST /v1/processes/{id}/signal", s.handleProcSignal)
	mux.HandleFunc("POST /v1/processes/{id}/resize", s.handleProcResize)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errs.New(errs.NotFound, "no such agent endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// Serve answers requests on l until ctx is done, then shuts the HTTP server
// down (in-flight requests see their context cancelled) and returns. It
// closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Cancelling ctx cancels every request, so running execs are killed
		// and Shutdown does not wait on them.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, Info{
		Version:         s.opts.Version,
		ProtocolVersion: ProtocolVersion,
		PID:             os.Getpid(),
		Root:            s.opts.Root,
	})
}

// errorBody turns err into its wire form. Only the caller-safe message of a
// classified error leaves the agent; causes (which may hold host paths) are
// logged instead.
func (s *Server) errorBody(r *http.Request, err error) ErrorBody {
	c := errs.ClassOf(err)
	if c == errs.Internal {
		s.log.Error("agent request failed", "method", r.Method, "endpoint", r.URL.Path, "err", err)
	}
	return ErrorBody{Code: c.Code(), Message: errs.Message(err)}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	body := s.errorBody(r, err)
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errs.ClassFromCode(body.Code).HTTPStatus())
	w.Write(b)
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded here; failing is a bug.
		s.log.Error("encode agent answer", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// decodeJSON reads a bounded JSON body to EOF. Reading to EOF matters for
// exec: net/http only notices a client hang-up (and cancels the request
// context) once the body has been consumed.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.New(errs.TooLarge, "request body over %d bytes", maxJSONBody)
		}
		return errs.Wrap(errs.Invalid, err, "read request body")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errs.New(errs.Invalid, "malformed JSON request: %v", err)
	}
	return nil
}
