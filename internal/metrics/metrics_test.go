package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// view is a ServiceView with fixed answers (the real service needs a
// runtime; the collectors only format what it returns).
type view struct{}

func (view) Providers(context.Context) ([]sandbox.ProviderInfo, error) {
	return []sandbox.ProviderInfo{{Name: "docker", Healthy: true, LatencyMS: 3, LastChecked: time.Now()},
		{Name: "mock", Healthy: false}}, nil
}

func (view) WarmPools(context.Context) ([]sandbox.WarmPoolInfo, error) {
	return []sandbox.WarmPoolInfo{{Image: "stacyvm/busybox", Provider: "docker", Size: 4, Ready: 3, Creating: 1}}, nil
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics_FamiliesAndLabels(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	m := New()
	st := m.InstrumentStore(raw)
	now := time.Now().UTC()
	for i, state := range []string{"running", "running", "warm", "destroyed"} {
		sb := &store.Sandbox{ID: "sb-00000000000" + string(rune('a'+i)), State: state, Provider: "docker",
			Image: "stacyvm/busybox", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.Sandboxes().Create(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Sandboxes().Get(ctx, "sb-000000000999"); err == nil {
		t.Fatal("want NotFound")
	}
	bus := events.NewBus(8)
	bus.Publish(events.SandboxCreated, nil)
	sub := bus.Subscribe(0)
	defer sub.Close()
	m.Watch(ctx, st, view{}, []string{"docker", "mock"}, bus)
	m.ObserveHTTP("GET", "/api/v1/sandboxes/{id}", 200, 5*time.Millisecond)
	m.SpawnObserved("docker", "warm", "ok", 20*time.Millisecond)
	m.ExecObserved("docker", "timeout", time.Second)

	out := scrape(t, m)
	for _, want := range []string{
		`stacyvm_sandboxes{provider="docker",state="running"} 2`,
		`stacyvm_sandboxes{provider="docker",state="warm"} 1`,
		`stacyvm_sandboxes{provider="mock",state="running"} 0`,
		`stacyvm_sandboxes_scrape_error 0`,
		`stacyvm_http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/sandboxes/{id}"} 1`,
		`stacyvm_sandbox_spawn_duration_seconds_count{outcome="ok",provider="docker",source="warm"} 1`,
		`stacyvm_exec_duration_seconds_count{outcome="timeout",provider="docker"} 1`,
		`stacyvm_store_operation_duration_seconds_count{op="sandbox_create",outcome="ok"} 4`,
		`stacyvm_store_operation_duration_seconds_count{op="sandbox_get",outcome="not_found"} 1`,
		`stacyvm_provider_healthy{provider="docker"} 1`,
		`stacyvm_provider_healthy{provider="mock"} 0`,
		`stacyvm_warm_pool_ready{image="stacyvm/busybox",provider="docker"} 3`,
		`stacyvm_warm_pool_target{image="stacyvm/busybox",provider="docker"} 4`,
		`go_goroutines`,
		`stacyvm_events_published_total 1`,
		`stacyvm_events_subscribers 1`,
		`stacyvm_process_resident_memory_bytes`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", out)
	}

	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fams := snap.([]Family)
	found := false
	for _, f := range fams {
		if strings.HasPrefix(f.Name, "go_") {
			t.Errorf("snapshot includes runtime family %s", f.Name)
		}
		if f.Name == "stacyvm_exec_duration_seconds" && f.Type == "histogram" && *f.Samples[0].Count == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("snapshot lacks the exec histogram: %+v", fams)
	}
}
