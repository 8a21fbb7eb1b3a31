// Package bench is the StacyVM benchmark harness behind `make bench` and
// cmd/stacyvm-bench: it starts its own `stacyvm serve` against the real
// Docker engine and measures it against raw Docker (CLI and Engine API), and
// optionally a peer StacyVM v1 server, in one interleaved run.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Config selects what a run measures and where it writes.
type Config struct {
	ServerBin string   // stacyvm binary to start
	Runs      int      // exec round trips per command (default 200)
	SpawnRuns int      // cold spawns (default 10)
	WarmRuns  int      // warm spawns (default 20)
	Idle      int      // idle sandboxes for the idle section (default 500)
	Quick     bool     // small N everywhere: a smoke run
	Only      []string // section names to run; empty = all
	Peer      string   // API root of another StacyVM v1 server, or ""
	Out       string   // markdown report path ("" = none)
	JSON      string   // raw figures path ("" = none)
	// Settle is a pause before every measured call of an interleaved
	// comparison, so work a previous call left running in the background
	// (dockerd and containerd clean up after each docker exec) does not land
	// on the next measurement, whichever system it belongs to.
	Settle time.Duration
	// Notes is the hand-written profiling analysis copied into the report
	// (default bench/profiling-notes.md, relative to the repository root).
	Notes string
}

// Sections lists every section name in run order.
var Sections = []string{"exec", "spawn", "warm", "stdout", "files", "concurrency", "idle", "throughput", "runtimes"}

// sectionFuncs maps a name to its implementation.
func sectionFuncs() map[string]func(context.Context, *Env) *Section {
	return map[string]func(context.Context, *Env) *Section{
		"exec": runExec, "spawn": runSpawn, "warm": runWarm, "stdout": runStdout,
		"files": runFiles, "concurrency": runConcurrency, "idle": runIdle, "throughput": runThroughput,
		"runtimes": runRuntimes,
	}
}

// Env is what every section shares: our server, its client, the peer and
// the Docker baseline.
type Env struct {
	Cfg    Config
	Server *Server
	Ours   *API
	Peer   *API // nil without --peer
	Docker *Baseline
	log    io.Writer
	// coldSpawnP50 is ours cold spawn p50 (ms) once the spawn section ran.
	coldSpawnP50 float64
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "[bench] "+format+"\n", args...)
}

// pick returns quick when running --quick, else full.
func (e *Env) pick(full, quick int) int {
	if e.Cfg.Quick {
		return quick
	}
	return full
}

// Row is one figure in a section table.
type Row struct {
	Metric       string   `json:"metric"`
	Unit         string   `json:"unit"`
	Ours         *float64 `json:"ours"`
	Baseline     *float64 `json:"baseline,omitempty"`
	BaselineName string   `json:"baseline_name,omitempty"`
	Peer         *float64 `json:"peer,omitempty"`
	// Ratio is ours ÷ baseline.
	Ratio  *float64 `json:"ratio,omitempty"`
	Target string   `json:"target,omitempty"`
	// Met is "met", "not met" or "" (no target).
	Met string `json:"met,omitempty"`
}

// Section is the outcome of one section: its table, notes and raw samples.
type Section struct {
	Name    string         `json:"name"`
	Title   string         `json:"title"`
	Rows    []Row          `json:"rows"`
	Notes   []string       `json:"notes,omitempty"`
	Samples Samples        `json:"samples_ms,omitempty"`
	Extra   map[string]any `json:"extra,omitempty"`
	Error   string         `json:"error,omitempty"`
	Seconds float64        `json:"seconds"`
}

func newSection(name, title string) *Section {
	return &Section{Name: name, Title: title, Samples: Samples{}, Extra: map[string]any{}}
}

func (s *Section) note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

func (s *Section) fail(err error) *Section {
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// add appends a row; ratio is computed from ours and base when both exist.
func (s *Section) add(metric, unit string, ours, base float64, baseName string) *Row {
	r := Row{Metric: metric, Unit: unit, Ours: num(ours), Baseline: num(base), BaselineName: baseName}
	if r.Ours != nil && r.Baseline != nil && *r.Baseline != 0 {
		r.Ratio = num(ours / base)
	}
	if r.Baseline == nil {
		r.BaselineName = ""
	}
	s.Rows = append(s.Rows, r)
	return &s.Rows[len(s.Rows)-1]
}

// target sets the row's target text and whether ok holds (nothing is met
// when a figure is missing).
func (r *Row) target(text string, ok bool) *Row {
	r.Target = text
	if r.Ours == nil {
		r.Met = "not measured"
		return r
	}
	if ok {
		r.Met = "met"
	} else {
		r.Met = "not met"
	}
	return r
}

// peer sets the peer column.
func (r *Row) peer(v float64) *Row { r.Peer = num(v); return r }

// num is v as an optional JSON number (nil for NaN or Inf).
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Run performs one benchmark run and writes the configured outputs.
func Run(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 200
	}
	if cfg.SpawnRuns <= 0 {
		cfg.SpawnRuns = 10
	}
	if cfg.WarmRuns <= 0 {
		cfg.WarmRuns = 20
	}
	if cfg.Idle < 0 {
		cfg.Idle = 0
	}
	if cfg.Quick {
		cfg.Runs, cfg.SpawnRuns, cfg.WarmRuns = min(cfg.Runs, 20), min(cfg.SpawnRuns, 3), min(cfg.WarmRuns, 4)
		cfg.Idle = min(cfg.Idle, 10)
	}
	for _, n := range cfg.Only {
		if !slices.Contains(Sections, n) {
			return nil, fmt.Errorf("unknown section %q (have %s)", n, strings.Join(Sections, ", "))
		}
	}
	if _, err := os.Stat(cfg.ServerBin); err != nil {
		return nil, fmt.Errorf("server binary: %w (run make build)", err)
	}
	if _, err := dockerCmd(ctx, nil, "image", "inspect", "--format", "{{.Id}}", busybox); err != nil {
		return nil, fmt.Errorf("docker engine or image %s unavailable: %w", busybox, err)
	}
	start := time.Now()
	rep := &Report{Machine: machineInfo(ctx), Config: cfg, Started: start.UTC(), Notes: profilingNotes(cfg.Notes)}
	runID := fmt.Sprintf("%d-%d", os.Getpid(), start.UnixNano()%1e9)

	fmt.Fprintf(log, "[bench] starting %s (run %s)\n", cfg.ServerBin, runID)
	srv, err := StartServer(ctx, cfg.ServerBin)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(ctx)
	base, err := NewBaseline(runID)
	if err != nil {
		return nil, err
	}
	defer base.Close(ctx)
	env := &Env{Cfg: cfg, Server: srv, Ours: NewAPI(srv.URL, busybox), Docker: base, log: log, coldSpawnP50: math.NaN()}
	defer env.Ours.Close()
	if cfg.Peer != "" {
		env.Peer = NewAPI(strings.TrimRight(cfg.Peer, "/"), busybox)
		defer env.Peer.Close()
		rep.Peer = cfg.Peer
	}
	rep.ServerStart = srv.Proc()

	funcs := sectionFuncs()
	for _, name := range Sections {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		env.logf("== %s", name)
		t0 := time.Now()
		sec := funcs[name](ctx, env)
		sec.Seconds = time.Since(t0).Seconds()
		if sec.Error != "" {
			env.logf("%s: error: %s", name, sec.Error)
		}
		env.logf("%s done in %.1fs", name, sec.Seconds)
		rep.Sections = append(rep.Sections, sec)
	}
	rep.Seconds = time.Since(start).Seconds()
	if err := rep.write(cfg.Out, cfg.JSON); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

// profilingNotes reads the hand-written analysis included in every report.
func profilingNotes(path string) string {
	if path == "" {
		return "(no profiling notes given)\n"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no " + path + " in this checkout)\n"
	}
	return string(b)
}
