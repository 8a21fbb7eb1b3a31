package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

// runtimeProviders are the isolation levels compared in the runtimes
// section, with how many cold spawns each gets (microVMs boot in seconds
// under TCG, so fewer).
var runtimeProviders = []struct {
	name          string
	spawns, quick int
}{
	{"docker", 5, 2}, {"gvisor", 5, 2}, {"proot", 5, 2}, {"vm", 3, 1},
}

// runRuntimes starts one server with every provider this host can run and
// measures, per provider, spawn-to-first-exec (for vm: boot to agent) and
// exec round trips, against the docker provider of the same server.
func runRuntimes(ctx context.Context, e *Env) *Section {
	sec := newSection("runtimes", "Isolation levels (one server, every provider)")
	srv, err := StartServer(ctx, e.Cfg.ServerBin,
		"STACYVM_PROVIDERS_GVISOR_ENABLED=true", "STACYVM_PROVIDERS_GVISOR_PULL=never",
		"STACYVM_PROVIDERS_PROOT_ENABLED=true", "STACYVM_PROVIDERS_VM_ENABLED=true")
	if err != nil {
		return sec.fail(err)
	}
	defer srv.Stop(ctx)
	healthy := providerHealth(ctx, srv.URL)
	sec.Extra["providers"] = healthy
	var dockerSpawn, dockerExec float64
	for _, rp := range runtimeProviders {
		if !healthy[rp.name] {
			sec.note("%s: not available on this host (GET /providers says unhealthy or absent); not measured", rp.name)
			continue
		}
		api := NewAPI(srv.URL, busybox)
		api.Provider = rp.name
		var ids []string
		for range e.pick(rp.spawns, rp.quick) {
			sleepCtx(ctx, 20*time.Millisecond)
			t0 := time.Now()
			id, err := api.Spawn(ctx)
			if err != nil {
				sec.note("%s spawn: %v", rp.name, err)
				break
			}
			sec.Samples.Add(rp.name+": spawn", time.Since(t0))
			if _, err := api.Exec(ctx, id, "true"); err != nil {
				sec.note("%s first exec: %v", rp.name, err)
			}
			sec.Samples.Add(rp.name+": spawn + first exec", time.Since(t0))
			ids = append(ids, id)
		}
		if len(ids) > 0 {
			for range e.pick(50, 10) {
				t0 := time.Now()
				if _, err := api.Exec(ctx, ids[0], "true"); err != nil {
					sec.note("%s exec: %v", rp.name, err)
					break
				}
				sec.Samples.Add(rp.name+": exec true", time.Since(t0))
			}
		}
		destroyAll(ctx, api, ids, 4)
		api.Close()
		spawn := sec.Samples.P50(rp.name + ": spawn + first exec")
		exec := sec.Samples.P50(rp.name + ": exec true")
		if rp.name == "docker" {
			dockerSpawn, dockerExec = spawn, exec
		}
		base, baseExec := dockerSpawn, dockerExec
		if rp.name == "docker" {
			base, baseExec = math.NaN(), math.NaN()
		}
		what := "spawn + first exec p50"
		if rp.name == "vm" {
			what = "boot to agent + first exec p50"
		}
		sec.add(fmt.Sprintf("%s: %s", rp.name, what), "ms", spawn, base, "docker provider, same server")
		sec.add(fmt.Sprintf("%s: exec `true` p50", rp.name), "ms", exec, baseExec, "docker provider, same server")
	}
	sec.note("vm runs QEMU microvm under TCG emulation here: KVM guests do not boot on this nested host (docs/vm.md)")
	return sec
}

// providerHealth is GET /providers as name → healthy.
func providerHealth(ctx context.Context, base string) map[string]bool {
	out := map[string]bool{}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/providers", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var ps []struct {
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
	}
	if json.NewDecoder(resp.Body).Decode(&ps) == nil {
		for _, p := range ps {
			out[p.Name] = p.Healthy
		}
	}
	return out
}
