package storetest

import (
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// RunGovernance is the contract of store.Governance: open returns a fresh,
// empty store for each call.
func RunGovernance(t *testing.T, open func(t *testing.T) store.Governance) {
	t.Run("Governance/TenantsMembersPolicies", func(t *testing.T) {
		g := open(t)
		ctx := t.Context()
		ts := g.Tenants()
		if err := ts.Create(ctx, &store.Tenant{ID: "acme", Name: "Acme"}); err != nil {
			t.Fatal(err)
		}
		if err := ts.Create(ctx, &store.Tenant{ID: "acme"}); !errs.Is(err, errs.Conflict) {
			t.Fatalf("duplicate tenant: %v, want Conflict", err)
		}
		if _, err := ts.Get(ctx, "nope"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
		if err := ts.PutMember(ctx, &store.Member{TenantID: "acme", UserID: "u1", Role: "viewer"}); err != nil {
			t.Fatal(err)
		}
		if err := ts.PutMember(ctx, &store.Member{TenantID: "acme", UserID: "u1", Role: "operator"}); err != nil {
			t.Fatal(err)
		}
		if m, err := ts.GetMember(ctx, "acme", "u1"); err != nil || m.Role != "operator" {
			t.Fatalf("member = %+v, %v; want operator (replaced)", m, err)
		}
		if err := ts.PutMember(ctx, &store.Member{TenantID: "ghost", UserID: "u1", Role: "viewer"}); !errs.Is(err, errs.NotFound) {
			t.Fatalf("member of unknown tenant: %v, want NotFound", err)
		}
		for i, prio := range []int{1, 5} {
			if err := ts.CreatePolicy(ctx, &store.Policy{ID: []string{"p1", "p2"}[i], TenantID: "acme", Kind: "image", Effect: "deny", Pattern: "x", Priority: prio}); err != nil {
				t.Fatal(err)
			}
		}
		ps, err := ts.ListPolicies(ctx, "acme")
		if err != nil || len(ps) != 2 || ps[0].ID != "p2" {
			t.Fatalf("policies = %v, %v; want p2 first", ps, err)
		}
		if err := ts.DeletePolicy(ctx, "other", "p1"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("deleting another tenant's policy: %v, want NotFound", err)
		}
		if err := ts.Delete(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if ps, _ := ts.ListPolicies(ctx, "acme"); len(ps) != 0 {
			t.Fatalf("policies survived their tenant: %v", ps)
		}
		if ms, _ := ts.ListMembers(ctx, "acme"); len(ms) != 0 {
			t.Fatalf("members survived their tenant: %v", ms)
		}
		if err := ts.Delete(ctx, "acme"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
	t.Run("Governance/Keys", func(t *testing.T) {
		g := open(t)
		ctx := t.Context()
		k := &store.APIKey{ID: "k1", Hash: "h1", Role: "operator", TenantID: "acme", ActForUsers: true, CreatedBy: "admin"}
		if err := g.Keys().Create(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := g.Keys().Create(ctx, &store.APIKey{ID: "k2", Hash: "h1", Role: "viewer", TenantID: "x"}); !errs.Is(err, errs.Conflict) {
			t.Fatalf("duplicate hash: %v, want Conflict", err)
		}
		got, err := g.Keys().GetByHash(ctx, "h1")
		if err != nil || got.ID != "k1" || !got.ActForUsers || got.TenantID != "acme" {
			t.Fatalf("GetByHash = %+v, %v", got, err)
		}
		if l, _ := g.Keys().List(ctx, "other"); len(l) != 0 {
			t.Fatalf("tenant filter: %v", l)
		}
		if err := g.Keys().Delete(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Keys().GetByHash(ctx, "h1"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("deleted key: %v", err)
		}
	})
	t.Run("Governance/AuditAppendListPrune", func(t *testing.T) {
		g := open(t)
		ctx := t.Context()
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, tenant := range []string{"a", "b", "a"} {
			e := &store.AuditEvent{At: base.Add(time.Duration(i) * time.Hour), Kind: store.AuditOp, TenantID: tenant, Actor: "u", Action: "spawn"}
			if err := g.Audit().Append(ctx, e); err != nil || e.Seq == 0 {
				t.Fatalf("append: %v (seq %d)", err, e.Seq)
			}
		}
		l, err := g.Audit().List(ctx, store.AuditFilter{TenantID: "a"})
		if err != nil || len(l) != 2 || !l[0].At.Equal(base) {
			t.Fatalf("list tenant a = %v, %v", l, err)
		}
		n, err := g.Audit().Prune(ctx, base.Add(90*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("prune = %d, %v; want 2", n, err)
		}
		if l, _ := g.Audit().List(ctx, store.AuditFilter{}); len(l) != 1 || l[0].TenantID != "a" {
			t.Fatalf("after prune: %v", l)
		}
	})
}
