package sandbox_test

import (
	"context"
	"testing"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestPolicy_ImageSpellingsCannotDodgeRules writes each rule the way an
// operator would (familiar name, with or without tag, fully qualified) and
// asks for the image under every other spelling Docker accepts for it.
func TestPolicy_ImageSpellingsCannotDodgeRules(t *testing.T) {
	pythonSpellings := []string{
		"stacyvm/python", "stacyvm/python:latest", "docker.io/stacyvm/python", "docker.io/stacyvm/python:latest",
		"index.docker.io/stacyvm/python", "index.docker.io/stacyvm/python:latest", "stacyvm/python@" + testDigest,
		"docker.io/stacyvm/python@" + testDigest, "stacyvm/python:latest@" + testDigest,
	}
	busyboxSpellings := []string{
		"busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox", "docker.io/busybox",
		"docker.io/library/busybox:latest", "index.docker.io/library/busybox", "busybox@" + testDigest,
	}
	cases := []struct {
		name    string
		effect  string
		pattern string
		denied  []string // asked for under these spellings: Forbidden
		allowed []string // these: admitted
	}{
		{"deny familiar name", auth.EffectDeny, `stacyvm/python`, pythonSpellings, []string{"stacyvm/busybox", "stacyvm/python-evil", "ghcr.io/stacyvm/python"}},
		{"deny familiar name with tag", auth.EffectDeny, `stacyvm/python:latest`,
			[]string{"stacyvm/python", "docker.io/stacyvm/python", "index.docker.io/stacyvm/python:latest", "stacyvm/python:latest@" + testDigest},
			[]string{"stacyvm/python:3.12"}},
		{"deny fully qualified", auth.EffectDeny, `docker\.io/stacyvm/python`, pythonSpellings, []string{"stacyvm/busybox"}},
		{"deny fully qualified with tag", auth.EffectDeny, `docker\.io/stacyvm/python:latest`, []string{"stacyvm/python", "index.docker.io/stacyvm/python"}, nil},
		{"deny official image", auth.EffectDeny, `busybox`, busyboxSpellings, []string{"stacyvm/busybox", "ghcr.io/library/busybox"}},
		{"deny official image fully qualified", auth.EffectDeny, `docker\.io/library/busybox(:.*)?`, busyboxSpellings, []string{"stacyvm/busybox"}},
		{"deny a namespace", auth.EffectDeny, `stacyvm/.*`, append(pythonSpellings, "docker.io/stacyvm/busybox:1"), []string{"busybox", "evil/stacyvm/python"}},
		{"deny by digest", auth.EffectDeny, `stacyvm/python@` + testDigest, []string{"docker.io/stacyvm/python@" + testDigest, "stacyvm/python:x@" + testDigest}, []string{"stacyvm/python"}},
		{"allow-list familiar name", auth.EffectAllow, `stacyvm/busybox`,
			[]string{"stacyvm/python", "evil.example/stacyvm/busybox", "localhost:5000/stacyvm/busybox", "stacyvm/busybox2", "busybox"},
			[]string{"stacyvm/busybox", "docker.io/stacyvm/busybox:latest", "index.docker.io/stacyvm/busybox", "stacyvm/busybox@" + testDigest}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, svc := govEnv(t, 0)
			ctx := context.Background()
			if err := e.store.Governance().Tenants().Create(ctx, &store.Tenant{ID: "acme"}); err != nil {
				t.Fatal(err)
			}
			addPolicy(t, e, "p"+string(rune('a'+i)), auth.PolicyImage, c.effect, c.pattern, 1)
			acme := as(auth.RoleOperator, "acme", "alice")
			for _, img := range c.denied {
				a, err := svc.Admission(acme, sandbox.CreateRequest{Image: img})
				if err != nil || a.Allowed || a.Reason != "policy_denied" {
					t.Errorf("%s %q, admission of %q = %+v, %v; want policy_denied", c.effect, c.pattern, img, a, err)
				}
				if _, err := svc.Create(acme, sandbox.CreateRequest{Image: img}); !errs.Is(err, errs.Forbidden) {
					t.Errorf("%s %q, create %q: %v, want Forbidden", c.effect, c.pattern, img, err)
				}
			}
			for _, img := range c.allowed {
				if a, err := svc.Admission(acme, sandbox.CreateRequest{Image: img}); err != nil || !a.Allowed {
					t.Errorf("%s %q, admission of %q = %+v, %v; want allowed", c.effect, c.pattern, img, a, err)
				}
			}
		})
	}
}

// TestPolicy_ImageRecordedInFamiliarForm checks that a sandbox records one
// spelling of its image whatever spelling was asked for, and that invalid
// references are Invalid before any policy or runtime sees them.
func TestPolicy_ImageRecordedInFamiliarForm(t *testing.T) {
	_, svc := govEnv(t, 0)
	acme := as(auth.RoleOperator, "acme", "alice")
	sb, err := svc.Create(acme, sandbox.CreateRequest{Image: "index.docker.io/stacyvm/python:3"})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Image != "stacyvm/python:3" {
		t.Errorf("recorded image = %q, want stacyvm/python:3", sb.Image)
	}
	for _, bad := range []string{"Stacyvm/Python", "stacyvm/python:", "sha256:" + testDigest[7:], "3f57d9401f8d", "x y"} {
		if _, err := svc.Create(acme, sandbox.CreateRequest{Image: bad}); !errs.Is(err, errs.Invalid) {
			t.Errorf("create image %q: %v, want Invalid", bad, err)
		}
		if _, err := svc.Admission(acme, sandbox.CreateRequest{Image: bad}); !errs.Is(err, errs.Invalid) {
			t.Errorf("admission image %q: %v, want Invalid", bad, err)
		}
	}
}
