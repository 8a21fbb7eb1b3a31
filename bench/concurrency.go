package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// runConcurrency measures bursts of concurrent spawns on our server (20 and
// 100) against the slowest single spawn measured just before, and a burst of
// 20 concurrent `docker run -d` for the baseline.
func runConcurrency(ctx context.Context, e *Env) *Section {
	sec := newSection("concurrency", "Concurrent spawns")
	e.interleave(ctx, sec, "single: ", e.pick(5, 2), 2*time.Minute, []variant{
		{"ours", func(ctx context.Context) (time.Duration, error) {
			var id string
			d, err := timed(func() (err error) { id, err = e.Ours.Spawn(ctx); return err })
			destroyAll(ctx, e.Ours, []string{id}, 1)
			return d, err
		}},
		{"docker run -d", func(ctx context.Context) (time.Duration, error) {
			var id string
			d, err := timed(func() (err error) { id, err = e.Docker.RunCLI(ctx); return err })
			e.Docker.Remove(ctx, id)
			return d, err
		}},
	})
	slowest := sec.Samples.Sum("single: ours").Max
	slowestDocker := sec.Samples.Sum("single: docker run -d").Max
	sec.add("slowest single spawn", "ms", slowest, slowestDocker, "slowest single docker run -d")

	bursts := []int{20, e.pick(100, 10)}
	if e.Cfg.Quick {
		bursts[0] = 5
	}
	for _, n := range bursts {
		key := fmt.Sprintf("burst %d: ours", n)
		wall, ids, failed := burst(ctx, e, sec, key, n, func(ctx context.Context) (string, error) { return e.Ours.Spawn(ctx) })
		e.logf("%d concurrent spawns: wall %.0f ms, %d failed; destroying", n, ms(wall), failed)
		destroyAll(ctx, e.Ours, ids, 8)
		var dwall time.Duration
		if n == bursts[0] {
			dkey := fmt.Sprintf("burst %d: docker run -d", n)
			var dids []string
			dwall, dids, _ = burst(ctx, e, sec, dkey, n, e.Docker.RunCLI)
			e.logf("%d concurrent docker run -d: wall %.0f ms; removing", n, ms(dwall))
			for _, id := range dids {
				e.Docker.Remove(ctx, id)
			}
			s := sec.Samples.Sum(dkey)
			sec.Extra[dkey] = map[string]float64{"wall_ms": ms(dwall), "p50_ms": s.P50, "p95_ms": s.P95}
		}
		w := ms(wall)
		if failed == n {
			w = math.NaN()
		}
		bw := math.NaN()
		if dwall > 0 {
			bw = ms(dwall)
		}
		r := sec.add(fmt.Sprintf("%d concurrent spawns: wall", n), "ms", w, bw, fmt.Sprintf("%d concurrent docker run -d", n))
		if n == bursts[0] {
			r.target(fmt.Sprintf("≤ 1.5 × slowest single (%.0f ms)", 1.5*slowest), w <= 1.5*slowest)
		}
		s := sec.Samples.Sum(key)
		d := sec.Samples.Sum(fmt.Sprintf("burst %d: docker run -d", n))
		sec.add(fmt.Sprintf("%d concurrent: per-spawn p50", n), "ms", s.P50, d.P50, "docker run -d (same burst size)")
		sec.add(fmt.Sprintf("%d concurrent: per-spawn p95", n), "ms", s.P95, d.P95, "docker run -d (same burst size)")
		sec.Extra[key] = map[string]any{"wall_ms": ms(wall), "failed": failed}
		if failed > 0 {
			sec.note("%d of %d concurrent spawns failed", failed, n)
		}
	}
	warmBurst(ctx, e, sec, bursts[0])
	if math.IsNaN(slowest) {
		sec.Error = "no single spawn samples"
	}
	return sec
}

// warmBurst separates our server from the engine: n concurrent spawns served
// by a warm pool of n (no engine call on the request path) against the
// slowest single warm spawn of the same server. A global lock in our request
// path would show here as wall ≈ n × single.
func warmBurst(ctx context.Context, e *Env, sec *Section, n int) {
	srv, err := StartServer(ctx, e.Cfg.ServerBin, fmt.Sprintf("STACYVM_WARM_POOL_SIZE=%d", n), "STACYVM_WARM_POOL_IMAGES="+busybox)
	if err != nil {
		sec.note("warm burst: %v", err)
		return
	}
	defer srv.Stop(ctx)
	api := NewAPI(srv.URL, busybox)
	defer api.Close()
	fill := func() bool {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if warmReady(ctx, srv.URL) >= n {
				return true
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		return false
	}
	var ids []string
	defer func() { destroyAll(ctx, api, ids, 8) }()
	if !fill() {
		sec.note("warm burst: the pool of %d did not fill in 3 minutes", n)
		return
	}
	single := "warm single: ours"
	for range e.pick(5, 2) {
		sleepCtx(ctx, 20*time.Millisecond)
		t0 := time.Now()
		id, err := api.Spawn(ctx)
		if err != nil {
			sec.note("warm single spawn: %v", err)
			return
		}
		sec.Samples.Add(single, time.Since(t0))
		ids = append(ids, id)
	}
	if !fill() {
		sec.note("warm burst: the pool of %d did not refill in 3 minutes", n)
		return
	}
	slowest := sec.Samples.Sum(single).Max
	key := fmt.Sprintf("warm burst %d: ours", n)
	wall, bids, failed := burst(ctx, e, sec, key, n, api.Spawn)
	ids = append(ids, bids...)
	w := ms(wall)
	if failed > 0 {
		w = math.NaN()
	}
	r := sec.add(fmt.Sprintf("%d concurrent spawns from a warm pool of %d: wall", n, n), "ms", w, slowest, "slowest single warm spawn")
	r.target(fmt.Sprintf("≤ 1.5 × slowest single warm spawn (%.1f ms)", 1.5*slowest), w <= 1.5*slowest)
	sec.Extra[key] = map[string]any{"wall_ms": ms(wall), "failed": failed, "slowest_single_ms": slowest}
}

// warmReady is the number of ready sandboxes across the server's warm pools.
func warmReady(ctx context.Context, base string) int {
	status, body := warmStatus(ctx, base)
	if status != 200 {
		return 0
	}
	var st struct {
		Pools []struct {
			Ready int `json:"ready"`
		} `json:"pools"`
	}
	if json.Unmarshal(body, &st) != nil {
		return 0
	}
	total := 0
	for _, p := range st.Pools {
		total += p.Ready
	}
	return total
}

// burst starts n spawns at once (behind a barrier) and returns the wall
// time until the last one answered, the ids created and the failure count;
// per-spawn times go to sec.Samples[key].
func burst(ctx context.Context, e *Env, sec *Section, key string, n int, spawn func(context.Context) (string, error)) (time.Duration, []string, int) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		ids    []string
		durs   []time.Duration
		failed int
		errMsg string
	)
	gate := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			id, err := spawn(ctx)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				errMsg = err.Error()
				return
			}
			ids = append(ids, id)
			durs = append(durs, d)
		}()
	}
	t0 := time.Now()
	close(gate)
	wg.Wait()
	wall := time.Since(t0)
	slices.Sort(durs)
	for _, d := range durs {
		sec.Samples.Add(key, d)
	}
	if failed > 0 {
		sec.note("%s: %d failed, last error: %s", key, failed, errMsg)
	}
	return wall, ids, failed
}
