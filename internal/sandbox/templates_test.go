package sandbox_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

func TestTemplates_ValidationRefusesWhatIsNotBuilt(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	bad := map[string]sandbox.Template{
		"no name":         {Image: "host"},
		"bad name":        {Name: "../x", Image: "host"},
		"no image":        {Name: "a"},
		"negative memory": {Name: "a", Image: "host", MemoryMB: -1},
		"allowed hosts":   {Name: "a", Image: "host", AllowedHosts: []string{"pypi.org"}},
		"secrets":         {Name: "a", Image: "host", Secrets: []sandbox.TemplateSecret{{Name: "K", InjectAt: "env"}}},
		"pool size":       {Name: "a", Image: "host", PoolSize: 2},
		"empty setup":     {Name: "a", Image: "host", Setup: []string{" "}},
		"unknown prov":    {Name: "a", Image: "host", Provider: "nope"},
		"bad network":     {Name: "a", Image: "host", Network: "wifi"},
		"ttl over max":    {Name: "a", Image: "host", TTLSeconds: 7200},
		"bad env key":     {Name: "a", Image: "host", Env: map[string]string{"A=B": "1"}},
	}
	for name, tpl := range bad {
		if err := e.svc.CreateTemplate(ctx, &tpl); err == nil {
			t.Errorf("%s: CreateTemplate accepted %+v", name, tpl)
		} else if !errs.Is(err, errs.Invalid) && !errs.Is(err, errs.Limit) {
			t.Errorf("%s: error %v is not Invalid/Limit", name, err)
		}
	}
	if _, err := e.svc.ReplaceTemplate(ctx, "missing", &sandbox.Template{Image: "host"}); !errs.Is(err, errs.NotFound) {
		t.Errorf("replace unknown = %v, want NotFound", err)
	}
}

func TestTemplates_SpawnAppliesRecipeAndSetup(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	tpl := &sandbox.Template{
		Name: "py", Image: "host", MemoryMB: 64, TTLSeconds: 120,
		Env:   map[string]string{"GREETING": "hello", "KEEP": "tpl"},
		Setup: []string{"echo \"$GREETING\" > setup-out", "echo second >> setup-out"},
	}
	if err := e.svc.CreateTemplate(ctx, tpl); err != nil {
		t.Fatal(err)
	}
	sb, err := e.svc.Create(ctx, sandbox.CreateRequest{Template: "py", Env: map[string]string{"GREETING": "hi"}, Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatalf("spawn from template: %v", err)
	}
	t.Cleanup(func() { e.svc.Destroy(context.Background(), sb.ID) })
	if sb.MemoryMB != 64 || sb.Metadata[sandbox.MetaTemplate] != "py" || sb.Metadata[sandbox.MetaTemplateVersion] != "1" || sb.Metadata["k"] != "v" {
		t.Errorf("sandbox does not carry the template: %+v", sb)
	}
	if ttl := sb.ExpiresAt.Sub(sb.CreatedAt); ttl != 120*time.Second {
		t.Errorf("ttl = %s, want the template's 2m", ttl)
	}
	_, out, _ := run(t, e.svc, sb.ID, sandbox.ExecRequest{Command: "cat setup-out; echo $KEEP"})
	if out != "hi\nsecond\ntpl\n" {
		t.Errorf("setup ran with the wrong env or order: %q", out)
	}
	if _, err := e.svc.Create(ctx, sandbox.CreateRequest{Template: "py", Image: "other"}); !errs.Is(err, errs.Invalid) {
		t.Errorf("image conflicting with the template = %v, want Invalid", err)
	}
	if _, err := e.svc.Create(ctx, sandbox.CreateRequest{Template: "nope"}); !errs.Is(err, errs.NotFound) {
		t.Errorf("unknown template = %v, want NotFound", err)
	}
	// A new version is what later spawns get.
	up, err := e.svc.ReplaceTemplate(ctx, "py", &sandbox.Template{Image: "host", Setup: []string{"true"}})
	if err != nil || up.Version != 2 {
		t.Fatalf("replace = %+v, %v", up, err)
	}
}

func TestTemplates_FailingSetupDestroysTheSandbox(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if err := e.svc.CreateTemplate(ctx, &sandbox.Template{Name: "broken", Image: "host", Setup: []string{"true", "echo boom >&2; exit 7"}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Create(ctx, sandbox.CreateRequest{Template: "broken"})
	if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "step 2") || !strings.Contains(err.Error(), "code 7") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing setup = %v; want Invalid naming step 2, exit 7 and its output", err)
	}
	live, err := e.svc.List(ctx, sandbox.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Errorf("a sandbox whose setup failed is still listed: %+v", live[0])
	}
	if hs, _ := e.mock.List(ctx); len(hs) != 0 {
		t.Errorf("its runtime is still there: %+v", hs)
	}
}

func TestQuotas_EnforcedOnCreateExtendAndExec(t *testing.T) {
	e := newEnv(t, func(d *sandbox.Defaults, _ *mock.Config) { d.MaxPerOwner = 5 })
	ctx := context.Background()
	if err := e.svc.PutQuota(ctx, &sandbox.Quota{Owner: "alice", MaxSandboxes: 1, MaxTTL: 5 * time.Minute, MaxExecTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, sandbox.CreateRequest{OwnerID: "alice", TTL: 10 * time.Minute}); !errs.Is(err, errs.Limit) {
		t.Errorf("ttl over the owner's quota = %v, want Limit", err)
	}
	sb := e.create(t, sandbox.CreateRequest{OwnerID: "alice"})
	if _, err := e.svc.Create(ctx, sandbox.CreateRequest{OwnerID: "alice"}); !errs.Is(err, errs.Limit) {
		t.Errorf("second sandbox over max_sandboxes=1 = %v, want Limit", err)
	}
	a, err := e.svc.Admission(ctx, sandbox.CreateRequest{OwnerID: "alice"})
	if err != nil || a.Allowed || a.Reason != "max_sandboxes_per_owner" || a.MaxOwnerSandboxes != 1 {
		t.Errorf("admission = %+v, %v", a, err)
	}
	// Others keep the server default (5).
	e.create(t, sandbox.CreateRequest{OwnerID: "bob"})
	e.create(t, sandbox.CreateRequest{OwnerID: "bob"})
	if _, err := e.svc.Extend(ctx, sb.ID, time.Hour); !errs.Is(err, errs.Limit) {
		t.Errorf("extend over the owner's max_ttl = %v, want Limit", err)
	}
	if _, err := e.svc.Extend(ctx, sb.ID, 4*time.Minute); err != nil {
		t.Errorf("extend within the quota: %v", err)
	}
	if _, _, err := runErr(e.svc, sb.ID, sandbox.ExecRequest{Command: "true", Timeout: 10 * time.Second}); !errs.Is(err, errs.Limit) {
		t.Errorf("exec timeout over the quota = %v, want Limit", err)
	}
	// The default timeout is lowered to the quota's: sleep 5 is cut at 1 s.
	start := time.Now()
	res, _, err := runErr(e.svc, sb.ID, sandbox.ExecRequest{Command: "sleep 5"})
	if err != nil || !res.TimedOut || time.Since(start) > 4*time.Second {
		t.Errorf("default exec under a 1s quota: %+v, %v after %s", res, err, time.Since(start))
	}
	u, err := e.svc.OwnerUsage(ctx, "alice")
	if err != nil || u.ActiveSandboxes != 1 || !u.HasQuota || u.MaxSandboxes != 1 {
		t.Errorf("usage = %+v, %v", u, err)
	}
	// Removing the quota restores the defaults at once.
	if err := e.svc.DeleteQuota(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	e.create(t, sandbox.CreateRequest{OwnerID: "alice"})
	sum, err := e.svc.SummarizeQuotas(ctx)
	if err != nil || sum.Total != 0 {
		t.Errorf("summary after delete = %+v, %v", sum, err)
	}
}

func runErr(svc *sandbox.Service, id string, req sandbox.ExecRequest) (sandbox.ExecResult, string, error) {
	var out bytes.Buffer
	res, err := svc.Exec(context.Background(), id, req, &out, &out)
	return res, out.String(), err
}
