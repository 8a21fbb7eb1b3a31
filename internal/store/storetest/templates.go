package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

func runTemplatesAndQuotas(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Templates/Lifecycle", func(t *testing.T) { testTemplates(t, open(t).Templates()) })
	t.Run("Quotas/Lifecycle", func(t *testing.T) { testQuotas(t, open(t).Quotas()) })
}

func testTemplates(t *testing.T, r store.Templates) {
	ctx := t.Context()
	tpl := &store.Template{
		TenantID: "t1", Name: "py", Image: "stacyvm/python", Description: "d",
		Setup: []string{"echo a", "echo b"}, MemoryMB: 256, CPUCores: 0.5, TTLSeconds: 600,
		Env: map[string]string{"A": "1"}, Provider: "docker", Network: "none",
	}
	if err := r.Create(ctx, tpl); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if tpl.Version != 1 || tpl.CreatedAt.IsZero() {
		t.Fatalf("Create did not set version/created_at: %+v", tpl)
	}
	if err := r.Create(ctx, &store.Template{TenantID: "t1", Name: "py", Image: "x"}); !errs.Is(err, errs.Conflict) {
		t.Fatalf("duplicate Create = %v, want Conflict", err)
	}
	// Same name in another tenant is another template.
	if err := r.Create(ctx, &store.Template{TenantID: "t2", Name: "py", Image: "y"}); err != nil {
		t.Fatalf("Create in another tenant: %v", err)
	}
	got, err := r.Get(ctx, "t1", "py")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := cmp.Diff(tpl, got, cmpopts.EquateApproxTime(time.Microsecond)); d != "" {
		t.Fatalf("Get differs (-want +got):\n%s", d)
	}
	if _, err := r.Get(ctx, "t2", "nope"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Get unknown = %v, want NotFound", err)
	}
	up, err := r.Update(ctx, "t1", "py", func(t *store.Template) error { t.Image = "stacyvm/busybox"; return nil })
	if err != nil || up.Version != 2 || up.Image != "stacyvm/busybox" {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	if _, err := r.Update(ctx, "t1", "py", func(t *store.Template) error { t.Name = "other"; return nil }); err == nil {
		t.Fatal("Update renaming a template succeeded")
	}
	if got, _ := r.Get(ctx, "t1", "py"); got.Version != 2 {
		t.Fatalf("a failed Update changed the record: %+v", got)
	}
	list, err := r.List(ctx, "t1", false)
	if err != nil || len(list) != 1 || list[0].Name != "py" || list[0].TenantID != "t1" {
		t.Fatalf("List(t1) = %+v, %v", list, err)
	}
	if all, err := r.List(ctx, "", true); err != nil || len(all) != 2 {
		t.Fatalf("List(all) = %d, %v; want 2", len(all), err)
	}
	if err := r.Delete(ctx, "t1", "py"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := r.Delete(ctx, "t1", "py"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("second Delete = %v, want NotFound", err)
	}
}

func testQuotas(t *testing.T, r store.Quotas) {
	ctx := t.Context()
	q := &store.Quota{Owner: "alice", MaxSandboxes: 2, MaxTTL: time.Hour, MaxExecTimeout: time.Minute}
	if err := r.Put(ctx, q); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := r.Get(ctx, "alice")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := cmp.Diff(q, got, cmpopts.EquateApproxTime(time.Microsecond)); d != "" {
		t.Fatalf("Get differs (-want +got):\n%s", d)
	}
	q.MaxSandboxes = 5
	if err := r.Put(ctx, q); err != nil {
		t.Fatalf("Put replace: %v", err)
	}
	if got, _ := r.Get(ctx, "alice"); got.MaxSandboxes != 5 {
		t.Fatalf("Put did not replace: %+v", got)
	}
	if err := r.Put(ctx, &store.Quota{Owner: "bob", MaxSandboxes: -1}); !errs.Is(err, errs.Invalid) {
		t.Fatalf("negative Put = %v, want Invalid", err)
	}
	if err := r.Put(ctx, &store.Quota{Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list[0].Owner != "alice" || list[1].Owner != "bob" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := r.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "alice"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("Get after Delete = %v, want NotFound", err)
	}
	if err := r.Delete(ctx, "alice"); !errs.Is(err, errs.NotFound) {
		t.Fatalf("second Delete = %v, want NotFound", err)
	}
}
