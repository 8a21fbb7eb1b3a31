package bench

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"time"
)

// runSpawn measures cold spawn-to-first-exec: ours (POST /sandboxes, then
// exec `true`) vs `docker run -d` + `docker exec` vs the Engine API (create +
// start + exec) and the peer, interleaved. Teardown is never timed.
func runSpawn(ctx context.Context, e *Env) *Section {
	sec := newSection("spawn", "Cold spawn to first exec")
	vs := []variant{
		{"ours", func(ctx context.Context) (time.Duration, error) {
			return spawnFirstExec(ctx, e.Ours, sec, "ours spawn only")
		}},
		{"docker run+exec", func(ctx context.Context) (time.Duration, error) {
			var id string
			t0 := time.Now()
			id, err := e.Docker.RunCLI(ctx)
			if err == nil {
				sec.Samples.Add("docker run -d only", time.Since(t0))
				_, err = e.Docker.ExecCLI(ctx, id, "true")
			}
			d := time.Since(t0)
			e.Docker.Remove(ctx, id)
			return d, err
		}},
		{"engine API", func(ctx context.Context) (time.Duration, error) {
			var id string
			t0 := time.Now()
			id, err := e.Docker.CreateAPI(ctx)
			if err == nil {
				_, err = e.Docker.ExecAPI(ctx, id, "true")
			}
			d := time.Since(t0)
			e.Docker.Remove(ctx, id)
			return d, err
		}},
	}
	if e.Peer != nil {
		vs = append(vs, variant{"peer", func(ctx context.Context) (time.Duration, error) {
			return spawnFirstExec(ctx, e.Peer, sec, "peer spawn only")
		}})
	}
	e.interleave(ctx, sec, "", e.Cfg.SpawnRuns, 5*time.Minute, vs)
	o, d, a, p := sec.Samples.P50("ours"), sec.Samples.P50("docker run+exec"), sec.Samples.P50("engine API"), sec.Samples.P50("peer")
	sec.add("spawn + first exec p50", "ms", o, d, "docker run -d + docker exec").peer(p).
		target("≤ 1.0 × docker run -d + docker exec", o <= d)
	sec.add("spawn + first exec p50 vs Engine API", "ms", o, a, "engine API create+start+exec").peer(p)
	sec.add("spawn only p50", "ms", sec.Samples.P50("ours spawn only"), sec.Samples.P50("docker run -d only"), "docker run -d").
		peer(sec.Samples.P50("peer spawn only"))
	sec.add("spawn + first exec max", "ms", sec.Samples.Sum("ours").Max, sec.Samples.Sum("docker run+exec").Max, "docker run -d + docker exec")
	e.coldSpawnP50 = sec.Samples.P50("ours spawn only")
	if math.IsNaN(o) {
		sec.Error = "no spawn samples from our server"
	}
	return sec
}

// spawnFirstExec spawns on api, runs `true`, records the spawn-only time
// under spawnKey, destroys the sandbox untimed, and returns spawn+exec time.
func spawnFirstExec(ctx context.Context, api *API, sec *Section, spawnKey string) (time.Duration, error) {
	t0 := time.Now()
	id, err := api.Spawn(ctx)
	if err != nil {
		return 0, err
	}
	sec.Samples.Add(spawnKey, time.Since(t0))
	_, err = api.Exec(ctx, id, "true")
	d := time.Since(t0)
	destroyAll(ctx, api, []string{id}, 1)
	return d, err
}

// runWarm starts a second server with a warm pool of 4 busybox sandboxes
// and measures spawn latency from the pool, waiting a moment after each
// spawn for the refill. Without the feature (GET /pool/warm not 200) it
// still measures, and marks the target "not available".
func runWarm(ctx context.Context, e *Env) *Section {
	sec := newSection("warm", "Warm spawn (pool of 4)")
	srv, err := StartServer(ctx, e.Cfg.ServerBin, "STACYVM_WARM_POOL_SIZE=4", "STACYVM_WARM_POOL_IMAGES="+busybox)
	if err != nil {
		return sec.fail(err)
	}
	defer srv.Stop(ctx)
	api := NewAPI(srv.URL, busybox)
	defer api.Close()
	status, body := warmStatus(ctx, srv.URL)
	available := status == 200
	sec.Extra["pool_warm_status"] = status
	if available {
		sec.Extra["pool_warm_body"] = json.RawMessage(body)
		e.logf("warm pool available: %s", body)
	} else {
		sec.note("warm pool not available: GET /api/v1/pool/warm answered %d; figures below are ordinary spawns on a server started with STACYVM_WARM_POOL_SIZE=4", status)
		e.logf("warm pool not available (GET /pool/warm = %d); measuring plain spawns", status)
	}
	fill := time.Duration(e.pick(3000, 1500)) * time.Millisecond
	refill := time.Duration(e.pick(1000, 500)) * time.Millisecond
	sleepCtx(ctx, fill)
	var ids []string
	defer func() { destroyAll(ctx, api, ids, 8) }()
	e.interleave(ctx, sec, "", e.Cfg.WarmRuns, 3*time.Minute, []variant{{"warm spawn", func(ctx context.Context) (time.Duration, error) {
		t0 := time.Now()
		id, err := api.Spawn(ctx)
		if err != nil {
			return 0, err
		}
		d := time.Since(t0)
		_, err = api.Exec(ctx, id, "true")
		sec.Samples.Add("warm spawn + first exec", time.Since(t0))
		ids = append(ids, id)
		sleepCtx(ctx, refill)
		return d, err
	}}})
	w := sec.Samples.P50("warm spawn")
	r := sec.add("warm spawn p50", "ms", w, e.coldSpawnP50, "ours cold spawn (spawn section)")
	if available {
		r.target("≤ 15 ms", w <= 15)
	} else {
		r.Target, r.Met = "≤ 15 ms", "not available"
	}
	sec.add("warm spawn p95", "ms", sec.Samples.Sum("warm spawn").P95, math.NaN(), "")
	sec.add("warm spawn + first exec p50", "ms", sec.Samples.P50("warm spawn + first exec"), math.NaN(), "")
	sec.Extra["warm_pool_available"] = available
	if math.IsNaN(w) {
		sec.Error = "no warm spawn samples"
	}
	return sec
}

// warmStatus is GET /pool/warm's status and (small) body.
func warmStatus(ctx context.Context, base string) (int, []byte) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/pool/warm", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !json.Valid(b) {
		b, _ = json.Marshal(string(b))
	}
	return resp.StatusCode, b
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
