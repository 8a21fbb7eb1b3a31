package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Main parses the stacyvm-bench flags, runs the benchmark and returns the
// process exit code (0 ok, 1 failure, 2 bad flags).
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "stacyvm-bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s", dash(cfg.Out))
	if cfg.JSON != "" {
		fmt.Fprintf(stdout, " and %s", cfg.JSON)
	}
	fmt.Fprintf(stdout, " (%.0f s)\n", rep.Seconds)
	for _, s := range rep.Sections {
		if s.Error != "" {
			fmt.Fprintf(stderr, "stacyvm-bench: section %s: %s\n", s.Name, s.Error)
			return 1
		}
	}
	return 0
}

// ParseFlags turns command-line arguments into a Config. Without --json, a
// full run writes bench/results/<date>-<commit>.json and a --quick run
// writes next to --out (its figures are not for comparison).
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("stacyvm-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var only string
	fs.StringVar(&cfg.ServerBin, "server-bin", "bin/stacyvm", "stacyvm binary to start")
	fs.IntVar(&cfg.Runs, "runs", 200, "exec round trips per command")
	fs.IntVar(&cfg.SpawnRuns, "spawn-runs", 10, "cold spawns")
	fs.IntVar(&cfg.WarmRuns, "warm-runs", 20, "warm spawns")
	fs.IntVar(&cfg.Idle, "idle", 500, "idle sandboxes in the idle section")
	fs.BoolVar(&cfg.Quick, "quick", false, "small N everywhere (smoke run)")
	fs.StringVar(&cfg.Notes, "notes", "bench/profiling-notes.md", "hand-written profiling notes copied into the report")
	fs.DurationVar(&cfg.Settle, "settle", 20*time.Millisecond, "pause before each measured call of an interleaved comparison (0 = none)")
	fs.StringVar(&only, "only", "", "comma-separated sections to run: "+strings.Join(Sections, ","))
	fs.StringVar(&cfg.Peer, "peer", "", "API root of another StacyVM v1 server (e.g. http://host:7423/api/v1), measured as a third column")
	fs.StringVar(&cfg.Out, "out", "docs/benchmarks.md", "markdown report (\"\" for none)")
	fs.StringVar(&cfg.JSON, "json", "", "raw figures as JSON (default bench/results/<date>-<commit>.json)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stacyvm-bench: unexpected arguments %q\n", fs.Args())
		return cfg, fmt.Errorf("unexpected arguments")
	}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Only = append(cfg.Only, n)
		}
	}
	jsonSet := false
	fs.Visit(func(f *flag.Flag) { jsonSet = jsonSet || f.Name == "json" })
	if !jsonSet {
		switch {
		case !cfg.Quick:
			cfg.JSON = fmt.Sprintf("bench/results/%s-%s.json", time.Now().UTC().Format("2006-01-02"), gitCommit(context.Background()))
		case cfg.Out != "":
			cfg.JSON = strings.TrimSuffix(cfg.Out, ".md") + ".json"
		}
	}
	return cfg, nil
}
