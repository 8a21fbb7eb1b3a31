package e2b_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/e2b/e2bfake"
)

// fakeHTTP is a raw client of the fake, to check it behaves like E2B.
func fakeHTTP(f *e2bfake.Server) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: f.DialContext, TLSClientConfig: &tls.Config{RootCAs: f.CertPool()},
	}}
}

func call(t *testing.T, hc *http.Client, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestFake_BehavesLikeE2B(t *testing.T) {
	f := startFake(t, false)
	hc := fakeHTTP(f)
	api := f.APIURL()

	if code, body := call(t, hc, "GET", api+"/sandboxes", "wrong", nil); code != 401 || body["code"] != float64(401) || body["message"] == "" {
		t.Errorf("wrong key: %d %v; want 401 with an Error body", code, body)
	}
	if code, body := call(t, hc, "GET", api+"/sandboxes/nosuch", apiKey, nil); code != 404 || body["code"] != float64(404) {
		t.Errorf("unknown sandbox: %d %v; want 404 with an Error body", code, body)
	}
	if code, _ := call(t, hc, "POST", api+"/sandboxes", apiKey, map[string]any{}); code != 400 {
		t.Errorf("create without templateID: %d, want 400", code)
	}
	code, sbx := call(t, hc, "POST", api+"/sandboxes", apiKey, map[string]any{"templateID": "base", "timeout": 1})
	if code != 201 || sbx["sandboxID"] == "" || sbx["clientID"] == "" || sbx["envdVersion"] == "" {
		t.Fatalf("create: %d %v; want 201 with a Sandbox", code, sbx)
	}
	id := sbx["sandboxID"].(string)
	t.Cleanup(func() { call(t, hc, "DELETE", api+"/sandboxes/"+id, apiKey, nil) })
	if code, d := call(t, hc, "GET", api+"/sandboxes/"+id, apiKey, nil); code != 200 || d["state"] != "running" {
		t.Errorf("get: %d %v; want 200 running", code, d)
	}
	// The port proxy answers 502 while nothing listens on the port, and
	// for sandboxes it does not know.
	if code, _ := call(t, hc, "GET", "https://1234-"+id+".e2b.test/", "", nil); code != 502 {
		t.Errorf("closed port through the proxy: %d, want 502", code)
	}
	if code, _ := call(t, hc, "GET", "https://1234-nosuch.e2b.test/", "", nil); code != 502 {
		t.Errorf("unknown sandbox through the proxy: %d, want 502", code)
	}
	if code, _ := call(t, hc, "GET", "https://49983-"+id+".e2b.test/health", "", nil); code != 204 {
		t.Errorf("envd health: %d, want 204", code)
	}
	// timeout 1: E2B kills the sandbox a second later.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := call(t, hc, "GET", api+"/sandboxes/"+id, apiKey, nil)
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox with timeout 1s still answers %d after 10s", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f.SandboxCount() != 0 {
		t.Errorf("fake keeps %d sandboxes after expiry, want 0", f.SandboxCount())
	}
	if code, _ := call(t, hc, "DELETE", api+"/sandboxes/"+id, apiKey, nil); code != 404 {
		t.Errorf("delete after expiry: %d, want 404", code)
	}
}
