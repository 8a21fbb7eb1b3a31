package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// runThroughput measures sustained exec throughput: one goroutine per
// sandbox (20) running `true` back to back, ours vs the Engine API on as
// many hardened containers, alternating in two halves each, plus the
// server's CPU time per command from /proc/<pid>/stat.
func runThroughput(ctx context.Context, e *Env) *Section {
	sec := newSection("throughput", "Sustained exec throughput")
	k := e.pick(20, 4)
	dur := time.Duration(e.pick(10, 2)) * time.Second
	ids, err := spawnMany(ctx, e, "throughput", k, 8, 5*time.Minute)
	defer destroyAll(ctx, e.Ours, ids, 8)
	if err != nil {
		return sec.fail(err)
	}
	var cids []string
	defer func() {
		for _, id := range cids {
			e.Docker.Remove(ctx, id)
		}
	}()
	for range k {
		id, err := e.Docker.CreateAPI(ctx)
		if id != "" {
			cids = append(cids, id)
		}
		if err != nil {
			return sec.fail(err)
		}
	}
	var oursN, apiN, oursErr, apiErr int64
	var oursT, apiT time.Duration
	var cpu float64
	for half := range 2 {
		e.logf("throughput: ours, %d goroutines × %s (half %d)", k, dur/2, half+1)
		p0 := e.Server.Proc()
		n, fails, took := hammer(ctx, ids, dur/2, func(ctx context.Context, id string) error {
			_, err := e.Ours.Exec(ctx, id, "true")
			return err
		})
		cpu += e.Server.Proc().CPUSecs - p0.CPUSecs
		oursN, oursErr, oursT = oursN+n, oursErr+fails, oursT+took
		e.logf("throughput: engine API, %d goroutines × %s (half %d)", k, dur/2, half+1)
		n, fails, took = hammer(ctx, cids, dur/2, func(ctx context.Context, id string) error {
			_, err := e.Docker.ExecAPI(ctx, id, "true")
			return err
		})
		apiN, apiErr, apiT = apiN+n, apiErr+fails, apiT+took
	}
	rate := float64(oursN) / oursT.Seconds()
	apiRate := float64(apiN) / apiT.Seconds()
	if oursN == 0 {
		rate = math.NaN()
	}
	sec.add(fmt.Sprintf("exec `true`/s, %d sandboxes", k), "cmd/s", rate, apiRate, "engine API exec")
	perCmd := cpu / float64(oursN) * 1000
	sec.add("server CPU per command", "ms", perCmd, math.NaN(), "")
	sec.Extra["ours"] = map[string]any{"commands": oursN, "errors": oursErr, "seconds": oursT.Seconds(), "server_cpu_seconds": cpu}
	sec.Extra["engine_api"] = map[string]any{"commands": apiN, "errors": apiErr, "seconds": apiT.Seconds()}
	sec.note("server CPU is utime+stime of the stacyvm process (10 ms tick resolution): %.2f s for %d commands", cpu, oursN)
	if oursErr+apiErr > 0 {
		sec.note("errors: ours %d, engine API %d", oursErr, apiErr)
	}
	if oursN == 0 {
		sec.Error = "no command completed"
	}
	return sec
}

// hammer runs fn back to back in one goroutine per id until d passes (each
// call bounded by 30 s) and returns completed calls, failures and the
// elapsed time.
func hammer(ctx context.Context, ids []string, d time.Duration, fn func(context.Context, string) error) (int64, int64, time.Duration) {
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(d)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil && bad.Load() < 100 {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := fn(cctx, id)
				cancel()
				if err != nil {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load(), bad.Load(), time.Since(t0)
}
