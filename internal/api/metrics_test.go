package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/metrics"
)

func TestMetrics_RoutePatternLabelsNotRawPaths(t *testing.T) {
	m := metrics.New()
	h := newHarness(t, func(o *Options) { o.Ops = Ops{Metrics: m} })
	id := h.create(`{}`)
	h.do("GET", "/sandboxes/"+id, "")
	h.do("GET", "/sandboxes/sb-000000000000", "")  // 404 through the route
	h.do("GET", "/no/such/path/"+randomHex(4), "") // unmatched
	rec := h.do("GET", "/metrics/prometheus", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	out := rec.Body.String()
	for _, want := range []string{
		`stacyvm_http_request_duration_seconds_count{code="201",method="POST",route="/api/v1/sandboxes"} 1`,
		`stacyvm_http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/sandboxes/{id}"} 1`,
		`stacyvm_http_request_duration_seconds_count{code="404",method="GET",route="/api/v1/sandboxes/{id}"} 1`,
		`stacyvm_http_request_duration_seconds_count{code="404",method="GET",route="unmatched"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(out, id) || strings.Contains(out, "/no/such") {
		t.Errorf("a raw path leaked into labels:\n%s", out)
	}
	rec = h.do("GET", "/metrics", "")
	var fams []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &fams); err != nil || len(fams) == 0 {
		t.Fatalf("JSON metrics: %v %s", err, rec.Body)
	}
}

func TestDiagnostics_AdminOnly(t *testing.T) {
	diag := func(context.Context) (any, error) { return map[string]string{"version": "test"}, nil }
	h := newHarness(t, func(o *Options) {
		o.APIKey, o.AdminAPIKey = "op-key-0123456789abcdef0123456789ab", "admin-key-0123456789abcdef01234567"
		o.Ops = Ops{Diagnostics: diag}
	})
	wantError(t, h.do("GET", "/diagnostics", ""), 401, "UNAUTHORIZED")
	wantError(t, h.do("GET", "/diagnostics", "", "X-API-Key", "op-key-0123456789abcdef0123456789ab"), 403, "FORBIDDEN")
	if rec := h.do("GET", "/diagnostics", "", "X-Admin-API-Key", "admin-key-0123456789abcdef01234567"); rec.Code != 200 {
		t.Fatalf("admin: status %d %s", rec.Code, rec.Body)
	}
}
