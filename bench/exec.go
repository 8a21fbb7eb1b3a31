package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// runExec measures the exec round trip of `echo hi` and `true` (argv mode):
// ours over HTTP, `docker exec`, the Engine API (create + attach + inspect)
// and the peer, interleaved, on one long-lived sandbox/container each.
func runExec(ctx context.Context, e *Env) *Section {
	sec := newSection("exec", "Exec round trip (argv mode)")
	c, cleanup, err := e.spawnContenders(ctx, sec, true)
	defer cleanup()
	if err != nil {
		return sec.fail(err)
	}
	ours, cliID, peerID := c.ours, c.baseline, c.peer
	// Correctness first: every contender must really print "hi\n".
	if r, err := e.Ours.Exec(ctx, ours, "echo", "hi"); err != nil || r.Stdout != "hi\n" {
		return sec.fail(fmt.Errorf("ours echo hi: %q %v", r.Stdout, err))
	}
	if n, err := e.Docker.ExecAPI(ctx, cliID, "echo", "hi"); err != nil || n != 3 {
		return sec.fail(fmt.Errorf("engine API echo hi: %d bytes, %v", n, err))
	}
	limit := time.Duration(max(60, e.Cfg.Runs/2)) * time.Second
	for _, argv := range [][]string{{"echo", "hi"}, {"true"}} {
		name := strings.Join(argv, " ")
		vs := []variant{
			{"ours", func(ctx context.Context) (time.Duration, error) {
				return timed(func() error { _, err := e.Ours.Exec(ctx, ours, argv...); return err })
			}},
			{"docker exec", func(ctx context.Context) (time.Duration, error) {
				return timed(func() error { _, err := e.Docker.ExecCLI(ctx, cliID, argv...); return err })
			}},
			{"engine API", func(ctx context.Context) (time.Duration, error) {
				return timed(func() error { _, err := e.Docker.ExecAPI(ctx, cliID, argv...); return err })
			}},
		}
		if peerID != "" {
			vs = append(vs, variant{"peer", func(ctx context.Context) (time.Duration, error) {
				return timed(func() error { _, err := e.Peer.Exec(ctx, peerID, argv...); return err })
			}})
		}
		// A few unrecorded warm-up rounds: first connections, page cache.
		for range 3 {
			for _, v := range vs {
				v.run(ctx)
			}
		}
		e.interleave(ctx, sec, name+": ", e.Cfg.Runs, limit, vs)
		// The same command with no docker traffic in between: docker exec
		// leaves dockerd and containerd busy after it returns, which the
		// interleaved figure for ours absorbs on a small machine.
		e.interleave(ctx, sec, name+": alone ", max(10, e.Cfg.Runs/2), limit, vs[:1])
		o, d, a, p := sec.Samples.Sum(name+": ours"), sec.Samples.Sum(name+": docker exec"),
			sec.Samples.Sum(name+": engine API"), sec.Samples.Sum(name+": peer")
		for _, q := range []struct {
			label string
			get   func(Summary) float64
		}{{"p50", func(s Summary) float64 { return s.P50 }}, {"p95", func(s Summary) float64 { return s.P95 }}, {"p99", func(s Summary) float64 { return s.P99 }}} {
			r := sec.add(fmt.Sprintf("`%s` %s", name, q.label), "ms", q.get(o), q.get(d), "docker exec").peer(q.get(p))
			if q.label == "p50" {
				r.target("≤ 0.1 × docker exec and ≤ 3 ms", q.get(o) <= 0.1*q.get(d) && q.get(o) <= 3)
				sec.add(fmt.Sprintf("`%s` p50 vs Engine API", name), "ms", q.get(o), q.get(a), "engine API").peer(q.get(p))
				alone := sec.Samples.P50(name + ": alone ours")
				sec.add(fmt.Sprintf("`%s` p50, ours alone (no docker traffic between)", name), "ms", alone, q.get(d), "docker exec").
					target("≤ 3 ms", alone <= 3)
			}
		}
		sec.Extra[name+": n"] = map[string]int{"ours": o.N, "docker exec": d.N, "engine API": a.N, "peer": p.N}
	}
	if math.IsNaN(sec.Samples.P50("true: ours")) {
		sec.Error = "no exec samples from our server"
	}
	return sec
}
