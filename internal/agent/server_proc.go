package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Background processes run detached from any connection: they outlive the
// request that started them and every client that reads them, until they
// exit, are killed, or the sandbox goes away. Their output is kept in a
// bounded ring (outputRing) that any number of clients can read or follow
// from any offset, one after another or at once.

// Limits of the process table.
const (
	maxRunningProcesses = 256 // running at once
	maxExitedProcesses  = 128 // exited ones kept for their status and output
	minOutputLimit      = 4 << 10
)

// procTable holds the background processes of one agent.
type procTable struct {
	mu    sync.Mutex
	next  int
	procs map[string]*bgProc
	order []string // ids, oldest first
}

// bgProc is one background process.
type bgProc struct {
	id    string
	argv  []string
	spec  ProcessSpec
	c     *child
	ring  *outputRing
	start time.Time
	done  chan struct{} // closed once exited and its output drained

	mu     sync.Mutex
	res    *ExecResult
	exited time.Time
}

func (p *bgProc) info() ProcessInfo {
	start, end := p.ring.bounds()
	in := ProcessInfo{
		ID: p.id, PID: p.c.pid, Argv: p.argv, TTY: p.spec.TTY, Stdin: p.spec.TTY || p.spec.Stdin,
		StartedAt: p.start.UTC(), OutputStart: start, OutputEnd: end, OutputLimit: p.ring.limit,
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.res == nil {
		in.Running = true
	} else {
		code := p.res.ExitCode
		ex := p.exited.UTC()
		in.ExitCode, in.TimedOut, in.ExitedAt = &code, p.res.TimedOut, &ex
	}
	return in
}

func (p *bgProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res == nil
}

// procs returns the table, created on first use.
func (s *Server) procTable() *procTable {
	s.procOnce.Do(func() { s.procs = &procTable{procs: map[string]*bgProc{}} })
	return s.procs
}

func (s *Server) handleProcStart(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	var spec ProcessSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Detached: the process outlives this request (no cancellation), and
	// only its timeout, a kill, or the sandbox's end stops it.
	p, err := s.startProcess(context.WithoutCancel(r.Context()), spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, _ := json.Marshal(p.info())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(b)
}

func (s *Server) startProcess(ctx context.Context, spec ProcessSpec) (*bgProc, error) {
	if spec.TimeoutMS < 0 {
		return nil, errs.New(errs.Invalid, "timeout_ms must not be negative")
	}
	limit := spec.OutputLimit
	switch {
	case limit == 0:
		limit = DefaultOutputLimit
	case limit < minOutputLimit || limit > MaxOutputLimit:
		return nil, errs.New(errs.Invalid, "output_limit must be between %d and %d bytes", minOutputLimit, MaxOutputLimit)
	}
	t := s.procTable()
	t.mu.Lock()
	running := 0
	for _, p := range t.procs {
		if p.running() {
			running++
		}
	}
	t.mu.Unlock()
	if running >= maxRunningProcesses {
		return nil, errs.New(errs.Limit, "%d background processes are running; kill some first", running)
	}
	c, err := s.startChild(spec, spec.Stdin)
	if err != nil {
		return nil, err
	}
	p := &bgProc{argv: append([]string(nil), spec.Argv...), spec: spec, c: c, ring: newOutputRing(limit),
		start: c.start, done: make(chan struct{})}
	t.mu.Lock()
	t.next++
	p.id = "proc-" + strconv.Itoa(t.next)
	t.procs[p.id] = p
	t.order = append(t.order, p.id)
	t.mu.Unlock()
	s.log.Debug("process started", "id", p.id, "pid", c.pid, "argv0", c.argv0)

	pumped := c.pump(func(typ byte, b []byte) error { p.ring.write(typ, b); return nil })
	go func() {
		res := c.finish(ctx, spec.TimeoutMS, pumped)
		p.ring.close()
		p.mu.Lock()
		p.res, p.exited = &res, time.Now()
		p.mu.Unlock()
		close(p.done)
		s.log.Debug("process exited", "id", p.id, "exit_code", res.ExitCode, "timed_out", res.TimedOut)
		t.evictExited()
	}()
	return p, nil
}

// evictExited forgets the oldest exited processes beyond maxExitedProcesses.
func (t *procTable) evictExited() {
	t.mu.Lock()
	defer t.mu.Unlock()
	exited := 0
	for _, id := range t.order {
		if !t.procs[id].running() {
			exited++
		}
	}
	if exited <= maxExitedProcesses {
		return
	}
	keep := t.order[:0]
	for _, id := range t.order {
		if exited > maxExitedProcesses && !t.procs[id].running() {
			delete(t.procs, id)
			exited--
			continue
		}
		keep = append(keep, id)
	}
	t.order = keep
}

func (s *Server) lookupProc(r *http.Request) (*bgProc, error) {
	id := r.PathValue("id")
	t := s.procTable()
	t.mu.Lock()
	p := t.procs[id]
	t.mu.Unlock()
	if p == nil {
		return nil, errs.New(errs.NotFound, "process %q not found", printableArg(id))
	}
	return p, nil
}

func (s *Server) handleProcList(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	t := s.procTable()
	t.mu.Lock()
	ps := make([]*bgProc, 0, len(t.order))
	for _, id := range t.order {
		ps = append(ps, t.procs[id])
	}
	t.mu.Unlock()
	out := make([]ProcessInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.info())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	s.writeJSON(w, out)
}

func (s *Server) handleProcGet(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, p.info())
}

// killWait is how long a kill waits for the process to be reaped, so the
// answer can carry its exit status.
const killWait = 2 * time.Second

func (s *Server) handleProcKill(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.running() {
		p.c.kill()
		select {
		case <-p.done:
		case <-time.After(killWait):
		case <-r.Context().Done():
		}
	}
	s.writeJSON(w, p.info())
}

func (s *Server) handleProcSignal(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req SignalRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sig, err := ParseSignal(req.Signal)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !p.running() {
		s.writeError(w, r, errs.New(errs.Conflict, "process %s has already exited", p.id))
		return
	}
	if err := p.c.signal(sig); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleProcResize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req ResizeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := p.c.resize(req.Cols, req.Rows); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleProcStdin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !p.running() {
		s.writeError(w, r, errs.New(errs.Conflict, "process %s has already exited", p.id))
		return
	}
	if err := p.c.copyStdin(r.Context(), r.Body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := r.URL.Query().Get("eof"); v == "1" || strings.EqualFold(v, "true") {
		if err := p.c.closeStdin(); err != nil {
			s.writeError(w, r, errs.Wrap(errs.Conflict, err, "close stdin"))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// outputBatch is the most a single read of the ring returns.
const outputBatch = 256 << 10

// handleProcOutput streams output from ?offset= (default 0) as frames:
// FrameOffset first, then stdout/stderr; with follow=true it keeps waiting
// for more until the process exits. After the process's last byte comes a
// FrameExit; a stream that ends without one (no follow, still running)
// simply stops.
func (s *Server) handleProcOutput(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(HeaderProcesses, "1")
	p, err := s.lookupProc(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var off int64
	if v := q.Get("offset"); v != "" {
		off, err = strconv.ParseInt(v, 10, 64)
		if err != nil || off < 0 {
			s.writeError(w, r, errs.New(errs.Invalid, "offset %q must be a whole number of bytes, 0 or more", printableArg(v)))
			return
		}
	}
	follow := q.Get("follow") == "1" || strings.EqualFold(q.Get("follow"), "true")
	if _, end := p.ring.bounds(); off > end {
		s.writeError(w, r, errs.New(errs.Invalid, "offset %d is past the end of the output (%d bytes so far)", off, end))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	next := int64(-1) // forces the first FrameOffset
	for {
		chunks, from, closed, wake := p.ring.read(off, outputBatch)
		if from != next {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(from))
			if WriteFrame(w, FrameOffset, b[:]) != nil {
				return
			}
			next = from
		}
		for _, c := range chunks {
			if WriteFrame(w, c.typ, c.data) != nil {
				return
			}
			next = c.off + int64(len(c.data))
		}
		off = next
		if len(chunks) > 0 {
			if rc.Flush() != nil {
				return
			}
			continue
		}
		if closed {
			<-p.done
			p.mu.Lock()
			res := *p.res
			p.mu.Unlock()
			b, _ := json.Marshal(res)
			WriteFrame(w, FrameExit, b)
			return
		}
		if !follow {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}
