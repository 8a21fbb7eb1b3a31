package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/tracing/tracingtest"
)

// TestTracing_SpansOfARealSandboxLifecycle: with tracing enabled, the
// binary exports over OTLP/HTTP one server span per request, named by route
// template and continuing the caller's W3C traceparent, with the sandbox
// service's and the provider's spans as its children, and no secrets.
func TestTracing_SpansOfARealSandboxLifecycle(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	const apiKey = "e2e-tracing-operator-key-0123456789abcdef"
	s := startServer(t, "", "STACYVM_TRACING_ENABLED=true", "STACYVM_TRACING_ENDPOINT="+rcv.URL,
		"STACYVM_TRACING_SERVICE_NAME=stacyvm-e2e", "STACYVM_TRACING_HEADERS=authorization=Bearer%20collector-secret",
		"STACYVM_AUTH_API_KEY="+apiKey)

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	do := func(method, path, body string, traceparent bool) []byte {
		t.Helper()
		req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", apiKey)
		req.Header.Set("X-Request-ID", "req-e2e-"+strings.ToLower(method))
		if traceparent {
			req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, buf.String())
		}
		return buf.Bytes()
	}
	var sb sandboxJSON
	if err := json.Unmarshal(do("POST", "/sandboxes", `{"env":{"SECRET_TOKEN":"env-secret-value"}}`, true), &sb); err != nil {
		t.Fatal(err)
	}
	do("POST", "/sandboxes/"+sb.ID+"/exec", `{"command":"echo exec-secret-arg; exit 3"}`, false)
	do("DELETE", "/sandboxes/"+sb.ID, "", false)

	wait := func(match func(tracingtest.Span) bool, what string) tracingtest.Span {
		t.Helper()
		sp, ok := rcv.WaitFor(20*time.Second, match)
		if !ok {
			t.Fatalf("no %s span; received %+v", what, rcv.Spans())
		}
		return sp
	}
	create := wait(tracingtest.Named("POST /api/v1/sandboxes"), "create request")
	if create.Kind != "SPAN_KIND_SERVER" || create.TraceID != traceID || create.ParentSpanID != parentID {
		t.Errorf("create request span kind %s trace %s parent %s, want a server span continuing %s/%s",
			create.Kind, create.TraceID, create.ParentSpanID, traceID, parentID)
	}
	if create.Attrs["http.response.status_code"] != "201" || create.Attrs["stacyvm.request_id"] != "req-e2e-post" || create.Resource["service.name"] != "stacyvm-e2e" {
		t.Errorf("create request span attrs %v resource %v", create.Attrs, create.Resource)
	}
	svcCreate := wait(tracingtest.Named("sandbox.create"), "service create")
	if svcCreate.ParentSpanID != create.SpanID || svcCreate.Attrs["stacyvm.sandbox_id"] != sb.ID || svcCreate.Attrs["stacyvm.provider"] != "docker" {
		t.Errorf("sandbox.create parent %s attrs %v, want a child of %s for %s on docker", svcCreate.ParentSpanID, svcCreate.Attrs, create.SpanID, sb.ID)
	}
	provCreate := wait(func(sp tracingtest.Span) bool {
		return sp.Name == "provider.create" && sp.Attrs["stacyvm.sandbox_id"] == sb.ID
	}, "provider create")
	if provCreate.TraceID != traceID {
		t.Errorf("provider.create trace %s, want %s (one trace from the caller down to the engine)", provCreate.TraceID, traceID)
	}
	if !ancestor(rcv.Spans(), provCreate, svcCreate.SpanID) {
		t.Errorf("provider.create is not below sandbox.create")
	}

	execReq := wait(tracingtest.Named("POST /api/v1/sandboxes/{id}/exec"), "exec request")
	if execReq.Attrs["stacyvm.sandbox_id"] != sb.ID || execReq.Attrs["http.route"] != "/api/v1/sandboxes/{id}/exec" || execReq.ParentSpanID != "" {
		t.Errorf("exec request span attrs %v parent %q, want sandbox id, route and a new root", execReq.Attrs, execReq.ParentSpanID)
	}
	execSvc := wait(tracingtest.Named("sandbox.exec"), "service exec")
	if execSvc.ParentSpanID != execReq.SpanID || execSvc.Attrs["stacyvm.exec.exit_code"] != "3" {
		t.Errorf("sandbox.exec parent %s attrs %v, want a child of %s with exit code 3", execSvc.ParentSpanID, execSvc.Attrs, execReq.SpanID)
	}

	del := wait(tracingtest.Named("DELETE /api/v1/sandboxes/{id}"), "destroy request")
	svcDel := wait(tracingtest.Named("sandbox.destroy"), "service destroy")
	provDel := wait(func(sp tracingtest.Span) bool {
		return sp.Name == "provider.destroy" && sp.Attrs["stacyvm.sandbox_id"] == sb.ID
	}, "provider destroy")
	if svcDel.ParentSpanID != del.SpanID || !ancestor(rcv.Spans(), provDel, svcDel.SpanID) {
		t.Errorf("destroy spans are not nested: request %s, service parent %s, provider %+v", del.SpanID, svcDel.ParentSpanID, provDel)
	}

	for _, raw := range rcv.Raw() {
		for _, secret := range []string{apiKey, "env-secret-value", "exec-secret-arg", "collector-secret", "SECRET_TOKEN"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("an exported span carries %q", secret)
			}
		}
	}
	if hs := rcv.Headers(); len(hs) == 0 || hs[0].Get("Authorization") != "Bearer collector-secret" {
		t.Errorf("exports carried headers %v, want tracing.headers' Authorization", hs)
	}
}

// ancestor reports whether the span with id is sp's parent, grandparent, ...
func ancestor(all []tracingtest.Span, sp tracingtest.Span, id string) bool {
	byID := map[string]tracingtest.Span{}
	for _, s := range all {
		byID[s.SpanID] = s
	}
	for i := 0; i < 16 && sp.ParentSpanID != ""; i++ {
		if sp.ParentSpanID == id {
			return true
		}
		sp = byID[sp.ParentSpanID]
	}
	return false
}
