package e2b_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/e2b"
	"github.com/stacyvm/stacyvm/internal/provider/e2b/e2bfake"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
)

const (
	busybox   = "stacyvm/busybox:latest"
	testLabel = "stacyvm.test.e2bfake"
	apiKey    = "e2b_test_0123456789abcdef"
)

// env is set once by TestMain and read-only afterwards.
type env struct {
	agentPath string
	skip      string // non-empty: why the fake (Docker) is unavailable
	run       string // this run's label value
}

var testEnv env

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// runMain builds the agent once; a missing Docker engine skips the tests
// that need the fake, except under CI=true where it fails them.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-e2b-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if testEnv.agentPath, err = providertest.BuildAgent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv.run = providertest.NewSandboxID()
	cli, skip, err := providertest.DockerEngine(busybox)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if skip != "" {
		testEnv.skip = skip
		return m.Run()
	}
	defer cli.Close()
	code := m.Run()
	removeLeftovers(cli)
	return code
}

// removeLeftovers force-removes this run's fake sandboxes.
func removeLeftovers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := client.Filters{}
	f.Add("label", testLabel+"="+testEnv.run)
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}

// startFake starts a fake E2B with the "base" template on busybox.
func startFake(t *testing.T, secure bool) *e2bfake.Server {
	t.Helper()
	if testEnv.skip != "" {
		t.Skip(testEnv.skip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := e2bfake.Start(ctx, e2bfake.Config{
		APIKey: apiKey, Domain: "e2b.test", Secure: secure,
		Templates: map[string]string{"base": busybox},
		Labels:    map[string]string{testLabel: testEnv.run},
	})
	if err != nil {
		t.Fatalf("e2bfake.Start: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fakeConfig(f *e2bfake.Server, serverID string) e2b.Config {
	return e2b.Config{
		APIURL: f.APIURL(), APIKey: apiKey, Domain: "e2b.test", AgentPath: testEnv.agentPath, DefaultImage: busybox,
		ServerID: serverID, TLS: &tls.Config{RootCAs: f.CertPool()}, DialContext: f.DialContext,
		RequestTimeout: 20 * time.Second,
	}
}

func newProvider(t *testing.T, cfg e2b.Config) *e2b.Provider {
	t.Helper()
	p, err := e2b.New(cfg, nil)
	if err != nil {
		t.Fatalf("e2b.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestConformance_AgainstFake(t *testing.T) {
	f := startFake(t, false)
	cfg := fakeConfig(f, "srv-"+testEnv.run)
	providertest.Run(t, providertest.Harness{
		Provider: newProvider(t, cfg),
		Spec: func(t *testing.T) provider.Spec {
			return provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox}
		},
		Reopen: func(t *testing.T) provider.Provider { return newProvider(t, cfg) },
		Slow:   true,
	})
}

func TestCreate_RequestShapesAndExecLatency(t *testing.T) {
	f := startFake(t, true) // secure: envd needs X-Access-Token
	serverID := "srv-shape-" + testEnv.run
	p := newProvider(t, fakeConfig(f, serverID))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	spec := provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, Network: provider.NetworkBridge,
		Env: map[string]string{"FOO": "bar"}}
	h, err := p.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })

	reqs := f.Requests()
	create := find(t, reqs, "POST", "/sandboxes")
	if got := create.Header.Get("X-API-Key"); got != apiKey {
		t.Errorf("create X-API-Key = %q, want the configured key", got)
	}
	if ct := create.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("create Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(create.Body, &body); err != nil {
		t.Fatalf("create body %q: %v", create.Body, err)
	}
	wantMeta := map[string]any{provider.LabelManaged: "true", provider.LabelServer: serverID,
		provider.LabelSandbox: spec.SandboxID, "stacyvm.image": busybox}
	if body["templateID"] != "base" || body["timeout"] != float64(3600) || body["allow_internet_access"] != true ||
		fmt.Sprint(body["metadata"]) != fmt.Sprint(wantMeta) || fmt.Sprint(body["envVars"]) != fmt.Sprint(map[string]any{"FOO": "bar"}) {
		t.Errorf("create body = %s; want template base, timeout 3600, internet on, metadata %v, envVars FOO=bar", create.Body, wantMeta)
	}
	up := find(t, reqs, "POST", "/files")
	if !strings.HasPrefix(up.Host, "49983-"+h.RuntimeID+".e2b.test") || up.Header.Get("X-Access-Token") == "" ||
		!strings.HasPrefix(up.Header.Get("Content-Type"), "multipart/form-data; boundary=") ||
		!strings.Contains(up.RawQuery, "username=root") || !strings.Contains(up.RawQuery, "path=%2Fusr%2Flocal%2Flib%2Fstacyvm%2Fstacyvm-agent") {
		t.Errorf("upload = host %s query %s headers %v; want envd host, root user, agent path, access token, multipart", up.Host, up.RawQuery, up.Header)
	}
	st := find(t, reqs, "POST", "/process.Process/Start")
	if st.Header.Get("Content-Type") != "application/connect+json" || st.Header.Get("Authorization") != "Basic cm9vdDo=" ||
		st.Header.Get("X-Access-Token") == "" || st.Header.Get("Connect-Protocol-Version") != "1" {
		t.Errorf("process start headers = %v; want connect+json, Basic root:, access token", st.Header)
	}
	var sr struct {
		Process struct {
			Cmd  string
			Args []string
			Envs map[string]string
		}
		Tag string
	}
	if err := json.Unmarshal(st.Body, &sr); err != nil || sr.Process.Cmd != "/bin/sh" || sr.Tag != "stacyvm-agent" ||
		len(sr.Process.Envs["STACYVM_AGENT_TOKEN"]) != 64 || !strings.Contains(strings.Join(sr.Process.Args, " "), "--listen tcp://0.0.0.0:49990") {
		t.Errorf("process start body = %s (%v); want sh -c agent --listen tcp://0.0.0.0:49990 with a token env", st.Body, err)
	}
	if info, ok := f.Sandbox(h.RuntimeID); !ok || !info.AllowInternet {
		t.Errorf("fake sandbox = %+v, %v; want internet allowed for bridge", info, ok)
	}

	// The agent sees the spec's env, never its own token.
	c, err := p.Agent(ctx, h)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	out := execOut(t, c, "echo $FOO:$STACYVM_AGENT_TOKEN")
	if out != "bar:\n" {
		t.Errorf("exec env = %q, want %q", out, "bar:\n")
	}
	// Exec latency through the fake's TLS port proxy.
	var took []time.Duration
	for range 30 {
		t0 := time.Now()
		execOut(t, c, "true")
		took = append(took, time.Since(t0))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("exec through the fake's proxy: p50 %v, p90 %v, max %v", took[len(took)/2], took[len(took)*9/10], took[len(took)-1])
}

func execOut(t *testing.T, c *agent.Client, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	res, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}, &out, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec %q = %+v, %v", script, res, err)
	}
	return out.String()
}

func find(t *testing.T, reqs []e2bfake.Request, method, path string) e2bfake.Request {
	t.Helper()
	i := slices.IndexFunc(reqs, func(r e2bfake.Request) bool { return r.Method == method && r.Path == path })
	if i < 0 {
		t.Fatalf("no %s %s request among %d", method, path, len(reqs))
	}
	return reqs[i]
}

func TestErrors_BadKeyUnknownSandboxAndE2BDown(t *testing.T) {
	f := startFake(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bad := fakeConfig(f, "srv-bad-"+testEnv.run)
	bad.APIKey = "e2b_wrong"
	pb := newProvider(t, bad)
	if err := pb.Health(ctx); !errs.Is(err, errs.Unauthorized) {
		t.Errorf("Health with a wrong key = %v, want UNAUTHORIZED", err)
	}
	_, err := pb.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID()})
	if !errs.Is(err, errs.Unauthorized) {
		t.Errorf("Create with a wrong key = %v, want UNAUTHORIZED", err)
	}
	if f.SandboxCount() != 0 {
		t.Errorf("fake has %d sandboxes after refused creates, want 0", f.SandboxCount())
	}

	p := newProvider(t, fakeConfig(f, "srv-err-"+testEnv.run))
	unknown := provider.Handle{Provider: "e2b", SandboxID: providertest.NewSandboxID(), RuntimeID: "nosuchsandbox0000000"}
	if st, err := p.Inspect(ctx, unknown); err != nil || st.State != provider.RuntimeMissing {
		t.Errorf("Inspect(unknown) = %+v, %v; want missing", st, err)
	}
	if err := p.Destroy(ctx, unknown); err != nil {
		t.Errorf("Destroy(unknown) = %v, want nil", err)
	}
	if _, err := p.Agent(ctx, unknown); !errs.Is(err, errs.NotFound) {
		t.Errorf("Agent(unknown) = %v, want NOT_FOUND", err)
	}

	unknownTemplate := fakeConfig(f, "srv-tpl-"+testEnv.run)
	unknownTemplate.Template = "no-such-template"
	if _, err := newProvider(t, unknownTemplate).Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID()}); !errs.Is(err, errs.NotFound) {
		t.Errorf("Create(unknown template) = %v, want NOT_FOUND", err)
	}

	// E2B down: nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	down := fakeConfig(f, "srv-down-"+testEnv.run)
	down.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	pd := newProvider(t, down)
	start := time.Now()
	if err := pd.Health(ctx); !errs.Is(err, errs.Unavailable) {
		t.Errorf("Health with E2B down = %v, want UNAVAILABLE", err)
	}
	if _, err := pd.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID()}); !errs.Is(err, errs.Unavailable) {
		t.Errorf("Create with E2B down = %v, want UNAVAILABLE", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("failing with E2B down took %v, want < 2s", el)
	}

	// E2B accepts but never answers: the request timeout bounds the wait.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	slow := fakeConfig(f, "srv-slow-"+testEnv.run)
	slow.RequestTimeout = 300 * time.Millisecond
	slow.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", hang.Addr().String())
	}
	start = time.Now()
	if err := newProvider(t, slow).Health(ctx); !errs.Is(err, errs.Timeout) && !errs.Is(err, errs.Unavailable) {
		t.Errorf("Health with a hung E2B = %v, want TIMEOUT or UNAVAILABLE", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("hung E2B took %v to fail, want about the request timeout", el)
	}
}

func TestNew_RejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]e2b.Config{
		"no key":          {ServerID: "s"},
		"no server id":    {APIKey: "k"},
		"bad url":         {APIKey: "k", ServerID: "s", APIURL: "ftp://x"},
		"domain with url": {APIKey: "k", ServerID: "s", Domain: "https://e2b.app"},
		"short timeout":   {APIKey: "k", ServerID: "s", Timeout: time.Second},
	} {
		if _, err := e2b.New(cfg, nil); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: New = %v, want INVALID", name, err)
		}
	}
}

func TestFake_ExpiresSandboxAfterTimeoutAndAgentRefreshes(t *testing.T) {
	f := startFake(t, false)
	cfg := fakeConfig(f, "srv-ttl-"+testEnv.run)
	cfg.Timeout = time.Minute
	p := newProvider(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID()})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { p.Destroy(context.Background(), h) })
	info, _ := f.Sandbox(h.RuntimeID)
	if left := time.Until(info.EndAt); left < 50*time.Second || left > 61*time.Second {
		t.Errorf("fake sandbox ends in %v, want about the 1m timeout", left)
	}
	// A reopened provider's first Agent call refreshes the E2B timeout.
	p2 := newProvider(t, cfg)
	before := len(f.Requests())
	if _, err := p2.Agent(ctx, h); err != nil {
		t.Fatalf("Agent: %v", err)
	}
	if !slices.ContainsFunc(f.Requests()[before:], func(r e2bfake.Request) bool {
		return r.Method == "POST" && r.Path == "/sandboxes/"+h.RuntimeID+"/timeout" && string(r.Body) == `{"timeout":60}`
	}) {
		t.Errorf("Agent on a reopened provider sent no POST /sandboxes/%s/timeout {\"timeout\":60}", h.RuntimeID)
	}
}

// TestCreate_ImageSelectsTemplate: E2B runs templates, so "e2b/<t>" picks
// one, the server's default image means providers.e2b.template, and any
// other image is refused before anything is created (never silently
// replaced by the template).
func TestCreate_ImageSelectsTemplate(t *testing.T) {
	f := startFake(t, false)
	p := newProvider(t, fakeConfig(f, "srv-img-"+testEnv.run))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, img := range []string{"stacyvm/python", "e2b/", "e2b/a/b", "e2b/base:v1", "e2b:base"} {
		_, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: img})
		if !errs.Is(err, errs.Invalid) {
			t.Errorf("image %q: %v, want Invalid", img, err)
		}
	}
	if _, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "e2b/nope"}); !errs.Is(err, errs.NotFound) {
		t.Errorf("unknown template: %v, want NotFound from E2B", err)
	}
	h, err := p.Create(ctx, provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "e2b/base"})
	if err != nil {
		t.Fatalf("e2b/base: %v", err)
	}
	if err := p.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if hs, err := p.List(ctx); err != nil || len(hs) != 0 {
		t.Errorf("after the refusals and one destroy: List = %v, %v; want nothing left", hs, err)
	}
}
