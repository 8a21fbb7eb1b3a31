package tracing_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/ops/redact"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/tracing"
	"github.com/stacyvm/stacyvm/internal/tracing/tracingtest"
)

// getOnly is an api.Service whose Get knows one sandbox; the router calls
// nothing else on the routes these tests use.
type getOnly struct{ api.Service }

func (getOnly) Get(_ context.Context, id string) (*sandbox.Sandbox, error) {
	if id == "sb-known" {
		return &sandbox.Sandbox{ID: id, State: sandbox.StateRunning, Provider: "mock", Image: "img"}, nil
	}
	return nil, errs.New(errs.NotFound, "sandbox %s not found", id)
}

func newTracing(t *testing.T, endpoint string, mut func(*config.TracingConfig)) *tracing.Tracing {
	t.Helper()
	cfg := config.Default(t.TempDir(), false).Tracing
	cfg.Enabled, cfg.Endpoint = true, endpoint
	if mut != nil {
		mut(&cfg)
	}
	tr, err := tracing.New(t.Context(), cfg, tracing.Options{Version: "v-test", ServerID: "srv-test"})
	if err != nil {
		t.Fatalf("tracing.New: %v", err)
	}
	return tr
}

// flush exports every buffered span now.
func flush(t *testing.T, tr *tracing.Tracing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestWrap_ServerSpanPerRequestThroughTheRouter(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	tr := newTracing(t, rcv.URL, func(c *config.TracingConfig) { c.Headers = "authorization=Bearer%20collector-token" })
	const apiKey = "sk-operator-key-never-in-spans"
	h := api.New(api.Options{Service: getOnly{}, Tracer: tr, APIKey: apiKey})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		name, path, wantSpan, wantRoute, wantStatus, wantSandbox string
		traceparent                                              bool
	}{
		{"found, continues the caller's trace", "/api/v1/sandboxes/sb-known", "GET /api/v1/sandboxes/{id}", "/api/v1/sandboxes/{id}", "200", "sb-known", true},
		{"not found", "/api/v1/sandboxes/sb-gone", "GET /api/v1/sandboxes/{id}", "/api/v1/sandboxes/{id}", "404", "sb-gone", false},
		{"unmatched path keeps a closed name", "/api/v1/no/such/route", "GET", "", "404", "", false},
	}
	for i, c := range cases {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		req.Header.Set("X-API-Key", apiKey)
		req.Header.Set("X-Request-ID", "req-case-"+string(rune('a'+i)))
		if c.traceparent {
			req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := strconv.Itoa(rec.Code); got != c.wantStatus {
			t.Fatalf("%s: status %s, want %s (body %s)", c.name, got, c.wantStatus, rec.Body)
		}
	}
	flush(t, tr)

	spans := rcv.Spans()
	if len(spans) != len(cases) {
		t.Fatalf("got %d spans, want %d: %+v", len(spans), len(cases), spans)
	}
	for i, c := range cases {
		s := spans[i]
		reqID := "req-case-" + string(rune('a'+i))
		if s.Name != c.wantSpan || s.Kind != "SPAN_KIND_SERVER" {
			t.Errorf("%s: span %q kind %s, want %q server", c.name, s.Name, s.Kind, c.wantSpan)
		}
		want := map[string]string{
			"http.request.method": "GET", "http.response.status_code": c.wantStatus,
			"http.route": c.wantRoute, "stacyvm.request_id": reqID, "stacyvm.sandbox_id": c.wantSandbox,
		}
		for k, v := range want {
			if s.Attrs[k] != v {
				t.Errorf("%s: attribute %s = %q, want %q (all: %v)", c.name, k, s.Attrs[k], v, s.Attrs)
			}
		}
		if c.traceparent && (s.TraceID != traceID || s.ParentSpanID != parentID) {
			t.Errorf("%s: trace %s parent %s, want the traceparent's %s / %s", c.name, s.TraceID, s.ParentSpanID, traceID, parentID)
		}
		if !c.traceparent && s.ParentSpanID != "" {
			t.Errorf("%s: parent %q, want a root span", c.name, s.ParentSpanID)
		}
		if s.Resource["service.name"] != "stacyvm" || s.Resource["service.version"] != "v-test" || s.Resource["service.instance.id"] != "srv-test" {
			t.Errorf("%s: resource %v", c.name, s.Resource)
		}
	}
	for _, raw := range rcv.Raw() {
		for _, secret := range []string{apiKey, "X-API-Key", "x-api-key", "collector-token"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("an exported span carries %q", secret)
			}
		}
	}
	if hs := rcv.Headers(); len(hs) == 0 || hs[0].Get("Authorization") != "Bearer collector-token" {
		t.Errorf("export headers %v, want tracing.headers' Authorization", hs)
	}
}

func TestWrap_UnsampledRatioExportsNothing(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	tr := newTracing(t, rcv.URL, func(c *config.TracingConfig) { c.SampleRatio = 0 })
	h := api.New(api.Options{Service: getOnly{}, Tracer: tr})
	for range 5 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v1/live", nil))
	}
	// A sampled parent overrides the ratio (ParentBased).
	req := httptest.NewRequest(http.MethodGet, "/api/v1/live", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	flush(t, tr)
	if got := rcv.Spans(); len(got) != 1 || got[0].Name != "GET /api/v1/live" {
		t.Errorf("spans %+v, want only the one whose caller sampled it", got)
	}
}

func TestNew_RefusesDisabledAndBadEndpoint(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  config.TracingConfig
	}{
		{"disabled", config.TracingConfig{Endpoint: "http://127.0.0.1:4318/v1/traces"}},
		{"no host", config.TracingConfig{Enabled: true, Endpoint: "not a url"}},
		{"bad headers", config.TracingConfig{Enabled: true, Endpoint: "http://127.0.0.1:4318/v1/traces", Headers: "novalue"}},
	} {
		if _, err := tracing.New(t.Context(), c.cfg, tracing.Options{}); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: err %v, want Invalid", c.name, err)
		}
	}
}

// fakeProvider implements provider.Provider; the variants below add the
// optional interfaces.
type fakeProvider struct{ created, destroyed int }

func (*fakeProvider) Name() string                                    { return "fake" }
func (*fakeProvider) Capabilities() provider.Capabilities             { return provider.Capabilities{} }
func (*fakeProvider) List(context.Context) ([]provider.Handle, error) { return nil, nil }
func (*fakeProvider) Health(context.Context) error                    { return nil }
func (*fakeProvider) Inspect(context.Context, provider.Handle) (provider.Status, error) {
	return provider.Status{}, nil
}
func (*fakeProvider) Agent(context.Context, provider.Handle) (*agent.Client, error) { return nil, nil }
func (p *fakeProvider) Create(_ context.Context, s provider.Spec) (provider.Handle, error) {
	p.created++
	if s.SandboxID == "sb-fail" {
		return provider.Handle{}, errs.New(errs.Unavailable, "engine gone")
	}
	return provider.Handle{Provider: "fake", SandboxID: s.SandboxID}, nil
}
func (p *fakeProvider) Destroy(context.Context, provider.Handle) error { p.destroyed++; return nil }

type statsP struct{ *fakeProvider }

func (statsP) Stats(context.Context, provider.Handle) (provider.Stats, error) {
	return provider.Stats{}, nil
}

type logsP struct{ *fakeProvider }

func (logsP) Logs(context.Context, provider.Handle, int) ([]string, error) { return nil, nil }

type hostP struct{ *fakeProvider }

func (hostP) HostRoot(context.Context, provider.Handle) (*os.Root, bool) { return nil, false }

type statsLogsP struct {
	statsP
	logsP
	*fakeProvider
}

type allP struct {
	statsP
	logsP
	hostP
	*fakeProvider
}

func TestProvider_KeepsExactlyTheOptionalInterfaces(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	tr := newTracing(t, rcv.URL, nil)
	fp := &fakeProvider{}
	for _, p := range []provider.Provider{
		fp, statsP{fp}, logsP{fp}, hostP{fp},
		statsLogsP{statsP{fp}, logsP{fp}, fp},
		allP{statsP{fp}, logsP{fp}, hostP{fp}, fp},
	} {
		w := tr.Provider(p)
		_, s1 := p.(provider.StatsReporter)
		_, s2 := w.(provider.StatsReporter)
		_, l1 := p.(provider.LogReader)
		_, l2 := w.(provider.LogReader)
		_, h1 := p.(provider.HostFS)
		_, h2 := w.(provider.HostFS)
		if s1 != s2 || l1 != l2 || h1 != h2 {
			t.Errorf("%T: stats/logs/hostfs %v/%v/%v, wrapped %v/%v/%v", p, s1, l1, h1, s2, l2, h2)
		}
	}
	w := tr.Provider(fp)
	before := fp.created
	if _, err := w.Create(t.Context(), provider.Spec{SandboxID: "sb-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Create(t.Context(), provider.Spec{SandboxID: "sb-fail"}); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Create err %v, want the provider's Unavailable", err)
	}
	if err := w.Destroy(t.Context(), provider.Handle{SandboxID: "sb-1"}); err != nil {
		t.Fatal(err)
	}
	if fp.created-before != 2 || fp.destroyed != 1 {
		t.Fatalf("calls reached the provider %d/%d times, want 2/1", fp.created-before, fp.destroyed)
	}
	flush(t, tr)
	got := map[string]tracingtest.Span{}
	for _, s := range rcv.Spans() {
		got[s.Name+"/"+s.Attrs["stacyvm.sandbox_id"]] = s
	}
	for key, wantStatus := range map[string]string{"provider.create/sb-1": "STATUS_CODE_UNSET", "provider.create/sb-fail": "STATUS_CODE_ERROR", "provider.destroy/sb-1": "STATUS_CODE_UNSET"} {
		s, ok := got[key]
		if !ok {
			t.Errorf("no span %s in %v", key, got)
			continue
		}
		if s.StatusCode != wantStatus || s.Attrs["stacyvm.provider"] != "fake" {
			t.Errorf("%s: status %s provider %q, want %s fake", key, s.StatusCode, s.Attrs["stacyvm.provider"], wantStatus)
		}
	}
	if s := got["provider.create/sb-fail"]; s.Attrs["error.type"] != "unavailable" {
		t.Errorf("failed create error.type %q, want the class unavailable (never the message)", s.Attrs["error.type"])
	}
}

func TestConfig_HeadersAreASecretForRedaction(t *testing.T) {
	c := config.Default(t.TempDir(), false)
	c.Tracing.Headers = "authorization=Bearer%20collector-token-123"
	if got := redact.Config(c).Tracing.Headers; got != redact.Mask {
		t.Errorf("redact.Config tracing.headers = %q, want %q", got, redact.Mask)
	}
	if !slices.Contains(redact.SecretFields(), "tracing.headers") {
		t.Errorf("SecretFields %v lacks tracing.headers", redact.SecretFields())
	}
	if got := redact.Text("sent "+c.Tracing.Headers, redact.Secrets(c)); strings.Contains(got, "collector-token") {
		t.Errorf("redact.Text left the header value: %q", got)
	}
}
