package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestKeyring_LookupAndRotation(t *testing.T) {
	k := NewKeyring(map[Role][]string{
		RoleOperator: SplitKeys("old-key-aaaaaaaa, new-key-bbbbbbbb\n"),
		RoleAdmin:    {"admin-key-cccccccc"},
	})
	if k.Len() != 3 {
		t.Fatalf("Len = %d, want 3", k.Len())
	}
	for key, want := range map[string]Role{"old-key-aaaaaaaa": RoleOperator, "new-key-bbbbbbbb": RoleOperator, "admin-key-cccccccc": RoleAdmin} {
		e, ok := k.Lookup(key)
		if !ok || e.Role != want || e.Hash != HashKey(key) || e.Tenant != DefaultTenant {
			t.Errorf("Lookup(%q) = %+v, %v; want role %s", key, e, ok, want)
		}
	}
	for _, bad := range []string{"", "old-key", "old-key-aaaaaaa", "old-key-aaaaaaaab", HashKey("old-key-aaaaaaaa")} {
		if _, ok := k.Lookup(bad); ok {
			t.Errorf("Lookup(%q) matched", bad)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	a, id := GenerateKey()
	b, _ := GenerateKey()
	if a == b || !strings.HasPrefix(a, KeyPrefix) || len(a) < 40 || id != KeyID(HashKey(a)) || len(id) != 12 {
		t.Fatalf("GenerateKey = %q %q, %q", a, id, b)
	}
}

func TestRole_Allows(t *testing.T) {
	tests := []struct {
		have, need Role
		want       bool
	}{
		{RolePublic, RolePublic, true},
		{RolePublic, RoleViewer, false},
		{RoleViewer, RoleViewer, true},
		{RoleViewer, RoleOperator, false},
		{RoleOperator, RoleViewer, true},
		{RoleOperator, RoleTenantAdmin, false},
		{RoleTenantAdmin, RoleOperator, true},
		{RoleTenantAdmin, RoleAdmin, false},
		{RoleAdmin, RoleTenantAdmin, true},
		{RoleAdmin, RoleWorker, false},
		{RoleWorker, RoleWorker, true},
		{RoleWorker, RoleViewer, false},
		{RoleWorker, RolePublic, true},
		{RoleAdmin, Role("admin-typo"), false},
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%s.Allows(%s) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestPrincipal_CanSee(t *testing.T) {
	var system *Principal
	op := &Principal{Role: RoleOperator, Tenant: "a"}
	tests := []struct {
		p      *Principal
		tenant string
		want   bool
	}{
		{system, "a", true},
		{&Principal{Role: RoleAdmin, Tenant: "x"}, "a", true},
		{op, "a", true},
		{op, "b", false},
		{op, "", false},
		{&Principal{Role: RolePublic}, "", false},
		{&Principal{Role: RoleWorker, Tenant: "a"}, "a", false},
	}
	for _, tt := range tests {
		if got := tt.p.CanSee(tt.tenant); got != tt.want {
			t.Errorf("%+v.CanSee(%q) = %v", tt.p, tt.tenant, got)
		}
	}
	ctx := WithPrincipal(context.Background(), op)
	if FromContext(ctx) != op || FromContext(context.Background()) != nil {
		t.Error("context round trip")
	}
}

func TestValidUserID(t *testing.T) {
	for _, ok := range []string{"", "alice", "user@example.com", strings.Repeat("u", 128), "ünïcode"} {
		if err := ValidUserID("X-User-ID", ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{strings.Repeat("u", 129), "a/b", `a\b`, "a b", "a\x00b", "a\nb", "a\x7fb", "a\u0085b", "\xff"} {
		if err := ValidUserID("X-User-ID", bad); !errs.Is(err, errs.Invalid) {
			t.Errorf("%q: %v, want Invalid", bad, err)
		}
	}
}

func TestPolicy_Evaluate(t *testing.T) {
	rules := []Rule{
		{ID: "p1", Kind: PolicyImage, Effect: EffectAllow, Pattern: `stacyvm/.*`, Priority: 10},
		{ID: "p2", Kind: PolicyImage, Effect: EffectDeny, Pattern: `stacyvm/python`, Priority: 20},
		{ID: "p3", Kind: PolicyNetwork, Effect: EffectDeny, Pattern: `bridge`, Priority: 1},
	}
	tests := []struct {
		kind, value string
		want        bool
	}{
		{PolicyImage, "stacyvm/busybox", true},
		{PolicyImage, "stacyvm/python", false},    // higher-priority deny
		{PolicyImage, "alpine", false},            // not on the allow list
		{PolicyImage, "evil/stacyvm/x", false},    // anchored
		{PolicyImage, "stacyvm/busybox\n", false}, // anchored, no multiline escape
		{PolicyNetwork, "bridge", false},
		{PolicyNetwork, "none", true},
		{PolicyProvider, "docker", true}, // no rules of that kind
	}
	for _, tt := range tests {
		if got := Evaluate(rules, tt.kind, tt.value); got.Allowed != tt.want {
			t.Errorf("Evaluate(%s=%q) = %+v, want allowed=%v", tt.kind, tt.value, got, tt.want)
		}
	}
}

func TestCompileRule_Bad(t *testing.T) {
	for _, r := range []Rule{
		{Kind: PolicyImage, Effect: EffectAllow, Pattern: `(`},
		{Kind: PolicyImage, Effect: EffectAllow, Pattern: `a{2000}`},
		{Kind: PolicyImage, Effect: EffectAllow, Pattern: ``},
		{Kind: "cpu", Effect: EffectAllow, Pattern: `x`},
		{Kind: PolicyImage, Effect: "maybe", Pattern: `x`},
	} {
		if _, err := CompileRule(r); !errs.Is(err, errs.Invalid) {
			t.Errorf("CompileRule(%+v) = %v, want Invalid", r, err)
		}
	}
}
