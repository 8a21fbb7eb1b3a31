// Package diag gathers StacyVM's diagnostics: redacted configuration and
// runtime facts, for GET /diagnostics and the support bundle. Nothing it
// returns carries a secret: the config goes through Config.Redacted.
package diag

import (
	"context"
	"os"
	"runtime"
	"time"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/ops/redact"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Diagnostics is the body of GET /diagnostics.
type Diagnostics struct {
	Version      string            `json:"version"`
	Uptime       string            `json:"uptime"`
	StartedAt    time.Time         `json:"started_at"`
	GoVersion    string            `json:"go_version"`
	OS           string            `json:"os"`
	Arch         string            `json:"arch"`
	NumCPU       int               `json:"num_cpu"`
	Goroutines   int               `json:"goroutines"`
	Memory       map[string]uint64 `json:"memory"`
	ServerID     string            `json:"server_id,omitempty"`
	ConfigSource string            `json:"config_source"`
	Config       *config.Config    `json:"config"`
	Database     map[string]any    `json:"database"`
	Providers    []ProviderHealth  `json:"providers,omitempty"`
	Sandboxes    map[string]int    `json:"sandboxes,omitempty"`
	Events       map[string]uint64 `json:"events,omitempty"`
	Errors       []string          `json:"errors,omitempty"`
}

// ProviderHealth is one provider's cached health.
type ProviderHealth struct {
	Name        string    `json:"name"`
	Default     bool      `json:"default"`
	Healthy     bool      `json:"healthy"`
	Error       string    `json:"error,omitempty"`
	LatencyMS   int64     `json:"latency_ms"`
	LastChecked time.Time `json:"last_checked"`
	Isolation   string    `json:"isolation,omitempty"`
}

// Versioner is implemented by stores that report their schema version.
type Versioner interface {
	SchemaVersion(ctx context.Context) (int64, error)
}

// Providers is the part of the sandbox service diagnostics reads.
type Providers interface {
	Providers(ctx context.Context) ([]sandbox.ProviderInfo, error)
}

// Input is what Collect reads; nil parts are left out.
type Input struct {
	Config    *config.Config
	Version   string
	StartedAt time.Time
	ServerID  string
	Store     store.Store // for counts and ping
	Schema    Versioner   // for the migration version
	Service   Providers
	Events    *events.Bus
}

// Collect gathers the diagnostics. Failures of one part are listed in
// Errors (caller-safe text) instead of failing the whole report.
func Collect(ctx context.Context, in Input) *Diagnostics {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	d := &Diagnostics{
		Version: in.Version, StartedAt: in.StartedAt.UTC(),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), Goroutines: runtime.NumGoroutine(),
		Memory:   map[string]uint64{"heap_alloc_bytes": ms.HeapAlloc, "sys_bytes": ms.Sys, "num_gc": uint64(ms.NumGC)},
		ServerID: in.ServerID, Database: map[string]any{},
	}
	if !in.StartedAt.IsZero() {
		d.Uptime = time.Since(in.StartedAt).Round(time.Second).String()
	}
	if in.Config != nil {
		d.Config = redact.Config(in.Config)
		d.ConfigSource = in.Config.Source
		d.Database["driver"] = in.Config.Database.Driver
		d.Database["path"] = in.Config.Database.Path
		if fi, err := os.Stat(in.Config.Database.Path); err == nil {
			d.Database["size_bytes"] = fi.Size()
		}
	}
	if in.Store != nil {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := in.Store.Ping(pctx)
		cancel()
		d.Database["reachable"] = err == nil
		if err != nil {
			d.Errors = append(d.Errors, "database: "+err.Error())
		}
		d.Sandboxes = map[string]int{}
		for _, st := range []sandbox.State{sandbox.StateCreating, sandbox.StateRunning, sandbox.StateWarm, sandbox.StateError, sandbox.StateExpired, sandbox.StateDestroyed} {
			n, err := in.Store.Sandboxes().Count(ctx, store.SandboxFilter{States: []string{string(st)}})
			if err == nil {
				d.Sandboxes[string(st)] = n
			}
		}
	}
	if in.Schema != nil {
		if v, err := in.Schema.SchemaVersion(ctx); err == nil {
			d.Database["schema_version"] = v
		}
	}
	if in.Service != nil {
		if ps, err := in.Service.Providers(ctx); err == nil {
			for _, p := range ps {
				d.Providers = append(d.Providers, ProviderHealth{Name: p.Name, Default: p.Default, Healthy: p.Healthy,
					Error: p.Error, LatencyMS: p.LatencyMS, LastChecked: p.LastChecked.UTC(), Isolation: p.Capabilities.Isolation})
			}
		}
	}
	if in.Events != nil {
		d.Events = map[string]uint64{"last_id": in.Events.LastID(), "ring_size": uint64(in.Events.Size())}
	}
	return d
}
