package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// runIdle starts a fresh server (so earlier sections' heap does not count),
// creates Cfg.Idle idle sandboxes on it (in parallel batches of 8, with
// progress), then measures the server's RSS, GET /sandboxes latency and the
// exec round trip on one of them; it destroys them afterwards.
func runIdle(ctx context.Context, e *Env) *Section {
	n := e.Cfg.Idle
	sec := newSection("idle", fmt.Sprintf("%d idle sandboxes", n))
	srv, err := StartServer(ctx, e.Cfg.ServerBin)
	if err != nil {
		return sec.fail(err)
	}
	defer srv.Stop(ctx)
	fresh := *e
	fresh.Server, fresh.Ours = srv, NewAPI(srv.URL, busybox)
	defer fresh.Ours.Close()
	e = &fresh
	sleepCtx(ctx, time.Second)
	before := e.Server.Proc()
	ids, err := spawnMany(ctx, e, "idle", n, 8, 20*time.Minute)
	defer func() {
		e.logf("destroying %d idle sandboxes", len(ids))
		destroyAll(ctx, e.Ours, ids, 8)
	}()
	if err != nil {
		sec.note("creating idle sandboxes stopped early: %v", err)
	}
	if len(ids) == 0 {
		return sec.fail(fmt.Errorf("no idle sandbox created: %v", err))
	}
	sec.Extra["created"] = len(ids)
	sleepCtx(ctx, 2*time.Second) // let creation garbage settle before reading RSS
	after := e.Server.Proc()
	sec.Extra["server_before"], sec.Extra["server_after"] = before, after
	sec.add("server VmRSS", "MB", kbToMB(after.RSSKB), kbToMB(before.RSSKB), "VmRSS with none").
		target("≤ 150 MB", kbToMB(after.RSSKB) <= 150)
	sec.note("measured on a fresh server: VmRSS %.1f MB with no sandbox, %.1f MB with %d", kbToMB(before.RSSKB), kbToMB(after.RSSKB), len(ids))
	sec.add("server VmHWM", "MB", kbToMB(after.HWMKB), math.NaN(), "")

	label := "stacyvm.server_id=" + e.Server.ServerID()
	e.interleave(ctx, sec, "list: ", e.pick(50, 10), 2*time.Minute, []variant{
		{"ours", func(ctx context.Context) (time.Duration, error) {
			return timed(func() error {
				got, err := e.Ours.List(ctx)
				if err == nil && got < len(ids) {
					err = fmt.Errorf("GET /sandboxes returned %d sandboxes, want ≥ %d", got, len(ids))
				}
				return err
			})
		}},
		{"engine API", func(ctx context.Context) (time.Duration, error) {
			return timed(func() error { _, err := e.Docker.ListAPI(ctx, label); return err })
		}},
	})
	l := sec.Samples.P50("list: ours")
	sec.add("GET /sandboxes p50", "ms", l, sec.Samples.P50("list: engine API"), "engine API container list (same label)").
		target("≤ 20 ms", l <= 20)

	one := ids[len(ids)/2]
	e.interleave(ctx, sec, "exec: ", e.pick(100, 10), 2*time.Minute, []variant{
		{"ours", func(ctx context.Context) (time.Duration, error) {
			return timed(func() error { _, err := e.Ours.Exec(ctx, one, "true"); return err })
		}},
	})
	x := sec.Samples.P50("exec: ours")
	sec.add("exec `true` p50 on one of them", "ms", x, math.NaN(), "").target("≤ 3 ms", x <= 3)
	if math.IsNaN(l) {
		sec.Error = "no list samples"
	}
	return sec
}

// spawnMany creates n sandboxes on e.Ours with par in flight, logging progress, and
// stops at the first error or after limit.
func spawnMany(ctx context.Context, e *Env, what string, n, par int, limit time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		mu      sync.Mutex
		ids     []string
		first   error
		wg      sync.WaitGroup
		started = time.Now()
	)
	sem := make(chan struct{}, par)
	step := max(1, n/10)
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := e.Ours.Spawn(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			ids = append(ids, id)
			if len(ids)%step == 0 {
				e.logf("%s: %d/%d sandboxes (%.1fs, RSS %.0f MB)", what, len(ids), n, time.Since(started).Seconds(), kbToMB(e.Server.Proc().RSSKB))
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return ids, first
}
