package sandbox_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

// govEnv is a Service with governance (policies, audit) over a real SQLite
// store and the mock provider, optionally with a warm pool of "host".
func govEnv(t *testing.T, warm int) (*env, *sandbox.Service) {
	t.Helper()
	e := newEnv(t, nil)
	opts := sandbox.Options{Store: e.store, Providers: []provider.Provider{e.mock}, DefaultProvider: "mock",
		Defaults:        sandbox.Defaults{Image: "host", TTL: time.Minute, MaxTTL: time.Hour, ReapInterval: time.Hour, DefaultExecTimeout: time.Minute, MaxExecTimeout: time.Minute},
		Governance:      e.store.Governance(),
		DefaultNetworks: map[string]string{"mock": "bridge"},
	}
	if warm > 0 {
		opts.WarmPools = map[string]int{"host": warm}
	}
	svc, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e, svc
}

func as(role auth.Role, tenant, subject string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Role: role, Tenant: tenant, Subject: subject, Method: auth.MethodOIDC})
}

func TestTenancy_OtherTenantsSandboxesDoNotExist(t *testing.T) {
	_, svc := govEnv(t, 0)
	alice := as(auth.RoleOperator, "acme", "alice")
	mallory := as(auth.RoleOperator, "evil", "mallory")
	viewer := as(auth.RoleViewer, "acme", "vic")
	admin := as(auth.RoleAdmin, "ops", "root")

	sb, err := svc.Create(alice, sandbox.CreateRequest{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if sb.TenantID != "acme" || sb.OwnerID != "alice" {
		t.Fatalf("sandbox tenant/owner = %q/%q, want acme/alice", sb.TenantID, sb.OwnerID)
	}
	// A tenant id in the request cannot move a non-admin elsewhere.
	sb2, err := svc.Create(mallory, sandbox.CreateRequest{TenantID: "acme"})
	if err != nil || sb2.TenantID != "evil" {
		t.Fatalf("mallory's create landed in %q (%v), want evil", sb2.TenantID, err)
	}

	var out bytes.Buffer
	ops := map[string]func(ctx context.Context) error{
		"get": func(ctx context.Context) error { _, err := svc.Get(ctx, sb.ID); return err },
		"exec": func(ctx context.Context) error {
			_, err := svc.Exec(ctx, sb.ID, sandbox.ExecRequest{Command: "echo hi"}, &out, &out)
			return err
		},
		"read": func(ctx context.Context) error { _, _, err := svc.ReadFile(ctx, sb.ID, "/etc/hostname"); return err },
		"write": func(ctx context.Context) error {
			return svc.WriteFile(ctx, sb.ID, "x", 0o644, strings.NewReader("x"), 1)
		},
		"list":    func(ctx context.Context) error { _, err := svc.ListFiles(ctx, sb.ID, "/"); return err },
		"extend":  func(ctx context.Context) error { _, err := svc.Extend(ctx, sb.ID, time.Minute); return err },
		"logs":    func(ctx context.Context) error { _, err := svc.Logs(ctx, sb.ID, 10); return err },
		"stats":   func(ctx context.Context) error { _, err := svc.Stats(ctx, sb.ID); return err },
		"destroy": func(ctx context.Context) error { return svc.Destroy(ctx, sb.ID) },
	}
	for name, op := range ops {
		if err := op(mallory); !errs.Is(err, errs.NotFound) {
			t.Errorf("%s by another tenant: %v, want NotFound", name, err)
		}
		anon := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RolePublic})
		if err := op(anon); !errs.Is(err, errs.NotFound) {
			t.Errorf("%s by an anonymous principal: %v, want NotFound", name, err)
		}
	}
	if err := ops["get"](viewer); err != nil {
		t.Errorf("same-tenant viewer get: %v", err)
	}
	if err := ops["exec"](alice); err != nil {
		t.Errorf("owner exec: %v", err)
	}
	list, _ := svc.List(mallory, sandbox.ListFilter{})
	if len(list) != 1 || list[0].ID != sb2.ID {
		t.Errorf("mallory lists %d sandboxes, want only her own", len(list))
	}
	list, _ = svc.List(mallory, sandbox.ListFilter{TenantID: "acme"})
	if len(list) != 1 || list[0].ID != sb2.ID {
		t.Errorf("mallory asking for tenant acme lists %v", list)
	}
	list, _ = svc.List(admin, sandbox.ListFilter{})
	if len(list) != 2 {
		t.Errorf("admin lists %d sandboxes, want 2", len(list))
	}
	if err := ops["get"](admin); err != nil {
		t.Errorf("admin get: %v", err)
	}
	if err := ops["destroy"](alice); err != nil {
		t.Errorf("owner destroy: %v", err)
	}
}

func TestTenancy_OwnerNeedsActForUsers(t *testing.T) {
	_, svc := govEnv(t, 0)
	user := as(auth.RoleOperator, "acme", "alice") // a person's token: ActForUsers false
	if _, err := svc.Create(user, sandbox.CreateRequest{OwnerID: "bob"}); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("create for another owner without act-for-users: %v, want Forbidden", err)
	}
	if _, err := svc.Admission(user, sandbox.CreateRequest{OwnerID: "bob"}); !errs.Is(err, errs.Forbidden) {
		t.Fatalf("admission for another owner: %v, want Forbidden", err)
	}
	if sb, err := svc.Create(user, sandbox.CreateRequest{OwnerID: "alice"}); err != nil || sb.OwnerID != "alice" {
		t.Fatalf("create for self: %v", err)
	}
	service := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RoleOperator, Tenant: "acme", Subject: "key:abc", ActForUsers: true})
	sb, err := svc.Create(service, sandbox.CreateRequest{OwnerID: "bob"})
	if err != nil || sb.OwnerID != "bob" {
		t.Fatalf("service key acting for bob: %+v, %v", sb, err)
	}
	for _, bad := range []string{"a/b", "a\x00b", strings.Repeat("x", 129)} {
		if _, err := svc.Create(service, sandbox.CreateRequest{OwnerID: bad}); !errs.Is(err, errs.Invalid) {
			t.Errorf("owner %q: %v, want Invalid", bad, err)
		}
	}
}

func addPolicy(t *testing.T, e *env, id, kind, effect, pattern string, prio int) {
	t.Helper()
	if _, err := auth.CompileRule(auth.Rule{Kind: kind, Effect: effect, Pattern: pattern}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Governance().Tenants().CreatePolicy(context.Background(),
		&store.Policy{ID: id, TenantID: "acme", Kind: kind, Effect: effect, Pattern: pattern, Priority: prio}); err != nil {
		t.Fatal(err)
	}
}

// TestPolicy_EveryCreatePathIsChecked tries each way of getting a sandbox
// past a tenant policy: explicit field, omitted field (defaults), admission,
// warm pool claim, template spawn.
func TestPolicy_EveryCreatePathIsChecked(t *testing.T) {
	e, svc := govEnv(t, 1)
	ctx := context.Background()
	svc.Start(ctx)
	if err := e.store.Governance().Tenants().Create(ctx, &store.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	acme := as(auth.RoleOperator, "acme", "alice")
	other := as(auth.RoleOperator, "other", "olga")

	// Wait for the warm sandbox so the claim path is really exercised.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ps, _ := svc.WarmPools(ctx)
		if len(ps) == 1 && ps[0].Ready == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("warm pool never filled")
		}
		time.Sleep(50 * time.Millisecond)
	}

	addPolicy(t, e, "deny-host", auth.PolicyImage, auth.EffectDeny, `ho.t`, 10)
	cases := map[string]sandbox.CreateRequest{
		"explicit image":          {Image: "host"},
		"image omitted (default)": {},
		"warm pool match":         {TTL: time.Minute},
	}
	for name, req := range cases {
		if _, err := svc.Create(acme, req); !errs.Is(err, errs.Forbidden) {
			t.Errorf("%s: %v, want Forbidden", name, err)
		}
	}
	a, err := svc.Admission(acme, sandbox.CreateRequest{})
	if err != nil || a.Allowed || a.Queueable || a.Reason != "policy_denied" {
		t.Errorf("admission = %+v, %v; want not allowed, policy_denied", a, err)
	}
	if ps, _ := svc.WarmPools(ctx); ps[0].Ready != 1 {
		t.Errorf("a denied create consumed the warm sandbox (ready %d)", ps[0].Ready)
	}
	// Another tenant is not affected.
	if _, err := svc.Create(other, sandbox.CreateRequest{}); err != nil {
		t.Errorf("other tenant: %v", err)
	}
	// Template spawn: the template's image goes through the same check.
	if tpls := e.store.Templates(); tpls != nil {
		if err := tpls.Create(ctx, &store.Template{TenantID: "acme", Name: "t1", Image: "host", Version: 1, MemoryMB: 64, CPUCores: 1, TTLSeconds: 60}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Create(acme, sandbox.CreateRequest{Template: "t1"}); !errs.Is(err, errs.Forbidden) {
			t.Errorf("template spawn: %v, want Forbidden", err)
		}
	}

	// A higher-priority allow wins over the deny.
	addPolicy(t, e, "allow-host", auth.PolicyImage, auth.EffectAllow, `host`, 20)
	if _, err := svc.Create(acme, sandbox.CreateRequest{}); err != nil {
		t.Errorf("after a higher-priority allow: %v", err)
	}

	// Network: deny bridge; the provider default is bridge, so leaving the
	// network out is denied too, and none is allowed.
	addPolicy(t, e, "no-bridge", auth.PolicyNetwork, auth.EffectDeny, `bridge`, 1)
	if _, err := svc.Create(acme, sandbox.CreateRequest{Network: "bridge"}); !errs.Is(err, errs.Forbidden) {
		t.Errorf("network bridge: %v, want Forbidden", err)
	}
	if _, err := svc.Create(acme, sandbox.CreateRequest{}); !errs.Is(err, errs.Forbidden) {
		t.Errorf("network omitted (default bridge): %v, want Forbidden", err)
	}
	if _, err := svc.Create(acme, sandbox.CreateRequest{Network: "none"}); err != nil {
		t.Errorf("network none: %v", err)
	}

	// Provider allow-list that does not include mock.
	addPolicy(t, e, "only-docker", auth.PolicyProvider, auth.EffectAllow, `docker`, 1)
	if _, err := svc.Create(acme, sandbox.CreateRequest{Network: "none"}); !errs.Is(err, errs.Forbidden) {
		t.Errorf("provider omitted (default mock): %v, want Forbidden", err)
	}
}

func TestAudit_RecordsOperationsWithoutSecrets(t *testing.T) {
	e, svc := govEnv(t, 0)
	a := sandbox.NewAudited(svc)
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RoleOperator, Tenant: "acme", Subject: "alice", RemoteAddr: "127.0.0.1:5555", RequestID: "req-1"})
	sb, err := a.Create(ctx, sandbox.CreateRequest{Env: map[string]string{"API_TOKEN": "tok-SECRET-env"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := a.Exec(ctx, sb.ID, sandbox.ExecRequest{Command: "echo", Args: []string{"out-SECRET-stdout"}, Mode: "argv", Env: map[string]string{"X": "exec-SECRET-env"}}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile(ctx, sb.ID, "/tmp/f", 0o600, strings.NewReader("file-SECRET-content"), 19); err != nil {
		t.Fatal(err)
	}
	rc, _, err := a.ReadFile(ctx, sb.ID, "/tmp/f")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := a.DeleteFile(ctx, sb.ID, "/tmp/f", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(as(auth.RoleOperator, "evil", "m"), sb.ID); !errs.Is(err, errs.NotFound) {
		t.Fatal(err)
	}
	if err := a.Destroy(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	evs, err := e.store.Governance().Audit().List(context.Background(), store.AuditFilter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	all := ""
	for _, ev := range evs {
		actions = append(actions, ev.Action)
		all += ev.Detail + ev.Target + ev.Actor
		if ev.Actor != "alice" || ev.RemoteAddr != "127.0.0.1:5555" || ev.RequestID != "req-1" || ev.Result != "ok" || ev.Kind != store.AuditOp {
			t.Errorf("event %+v", ev)
		}
	}
	want := "sandbox.spawn sandbox.exec file.write file.read file.delete sandbox.destroy"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("actions = %s, want %s", got, want)
	}
	if strings.Contains(all, "SECRET-env") || strings.Contains(all, "SECRET-content") {
		t.Errorf("audit holds a secret: %s", all)
	}
	if !strings.Contains(all, "out-SECRET-stdout") || !strings.Contains(all, "API_TOKEN") || !strings.Contains(all, "/tmp/f") {
		t.Errorf("audit lacks the command line, env names or path: %s", all)
	}
}

func TestRunAuditRetention_PrunesOldEvents(t *testing.T) {
	e, _ := govEnv(t, 0)
	gov := e.store.Governance()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := &store.AuditEvent{At: time.Now().Add(-48 * time.Hour), Kind: store.AuditOp, Action: "old"}
	fresh := &store.AuditEvent{At: time.Now(), Kind: store.AuditOp, Action: "fresh"}
	for _, ev := range []*store.AuditEvent{old, fresh} {
		if err := gov.Audit().Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sandbox.RunAuditRetention(ctx, gov, 24*time.Hour, time.Hour, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, _ := gov.Audit().List(ctx, store.AuditFilter{})
		if len(evs) == 1 && evs[0].Action == "fresh" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events after retention: %d", len(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestAudit_ArchiveReadRecordsThePathOnly(t *testing.T) {
	e, svc := govEnv(t, 0)
	a := sandbox.NewAudited(svc)
	ctx := as(auth.RoleOperator, "acme", "alice")
	sb, err := a.Create(ctx, sandbox.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFile(ctx, sb.ID, "/tmp/arch/f", 0o600, strings.NewReader("arch-SECRET"), 11); err != nil {
		t.Fatal(err)
	}
	rc, err := a.ReadArchive(ctx, sb.ID, "/tmp/arch", false)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Contains(body, []byte("arch-SECRET")) {
		t.Fatal("archive lacks the file")
	}
	evs, _ := e.store.Governance().Audit().List(context.Background(), store.AuditFilter{TenantID: "acme"})
	last := evs[len(evs)-1]
	if last.Action != "file.archive_read" || !strings.Contains(last.Detail, "/tmp/arch") || strings.Contains(last.Detail, "SECRET") {
		t.Fatalf("last event %+v", last)
	}
}
