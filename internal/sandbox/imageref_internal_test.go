package sandbox

import (
	"slices"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestCanonicalImage_NamesEverySpelling(t *testing.T) {
	const dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		in       string
		familiar string
		want     []string // each must be among the names
	}{
		{"busybox", "busybox", []string{"busybox", "busybox:latest", "docker.io/library/busybox", "docker.io/library/busybox:latest"}},
		{"library/busybox", "busybox", []string{"busybox", "docker.io/library/busybox:latest"}},
		{"docker.io/library/busybox:1.36", "busybox:1.36", []string{"busybox", "busybox:1.36", "docker.io/library/busybox", "docker.io/library/busybox:1.36"}},
		{"index.docker.io/library/busybox", "busybox", []string{"busybox", "docker.io/library/busybox"}},
		{"stacyvm/python", "stacyvm/python", []string{"stacyvm/python", "stacyvm/python:latest", "docker.io/stacyvm/python", "docker.io/stacyvm/python:latest"}},
		{"docker.io/stacyvm/python:latest", "stacyvm/python:latest", []string{"stacyvm/python", "stacyvm/python:latest"}},
		{"stacyvm/python@" + dig, "stacyvm/python@" + dig, []string{"stacyvm/python", "docker.io/stacyvm/python", "stacyvm/python@" + dig, "docker.io/stacyvm/python@" + dig}},
		{"stacyvm/python:3@" + dig, "stacyvm/python:3@" + dig, []string{"stacyvm/python", "stacyvm/python:3", "stacyvm/python@" + dig, "stacyvm/python:3@" + dig}},
		{"ghcr.io/acme/tool:v1", "ghcr.io/acme/tool:v1", []string{"ghcr.io/acme/tool", "ghcr.io/acme/tool:v1"}},
		{"localhost:5000/x", "localhost:5000/x", []string{"localhost:5000/x", "localhost:5000/x:latest"}},
		{"host", "host", []string{"host", "docker.io/library/host"}},
	}
	for _, c := range cases {
		got, err := canonicalImage(c.in)
		if err != nil {
			t.Errorf("canonicalImage(%q): %v", c.in, err)
			continue
		}
		if got.familiar != c.familiar {
			t.Errorf("canonicalImage(%q).familiar = %q, want %q", c.in, got.familiar, c.familiar)
		}
		for _, w := range c.want {
			if !slices.Contains(got.names, w) {
				t.Errorf("canonicalImage(%q) names = %q, missing %q", c.in, got.names, w)
			}
		}
		// A registry elsewhere is never folded into Docker Hub names.
		if strings.Contains(c.in, "ghcr.io") || strings.HasPrefix(c.in, "localhost") {
			for _, n := range got.names {
				if strings.HasPrefix(n, "docker.io/") || !strings.Contains(n, "/") {
					t.Errorf("canonicalImage(%q) produced Docker Hub name %q", c.in, n)
				}
			}
		}
	}
}

func TestCanonicalImage_RejectsInvalid(t *testing.T) {
	for _, in := range []string{
		"Stacyvm/Python", "stacyvm/python:", "stacyvm/python@sha256:abc", "a b", "busybox\n",
		"../etc/passwd", "stacyvm//python", "/busybox", "busybox:latest:x", ":latest",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", // a bare image ID
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123", "3f57d9401f8d", "cafe", "cafe:latest", "abc123@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", // image ID prefixes
		strings.Repeat("a", 256),
	} {
		if _, err := canonicalImage(in); !errs.Is(err, errs.Invalid) {
			t.Errorf("canonicalImage(%q) = %v, want Invalid", in, err)
		}
	}
}

// TestCanonicalImage_E2BTemplateNames: the e2b provider's template images
// ("e2b/<template>", internal/provider/e2b.TemplatePrefix) pass the server's
// parsing unchanged (no ":latest" added to what the provider receives) and
// are matched by policies as e2b/<template>. A hex-only template alias in
// the old "e2b:<t>" form read as an image ID, so that form was dropped.
func TestCanonicalImage_E2BTemplateNames(t *testing.T) {
	for _, tpl := range []string{"base", "code-interpreter-v1", "rki5dems9wqfm4r03t7g", "e2b"} {
		ref, err := canonicalImage("e2b/" + tpl)
		if err != nil {
			t.Errorf("e2b/%s: %v", tpl, err)
			continue
		}
		if ref.familiar != "e2b/"+tpl || !slices.Contains(ref.names, "e2b/"+tpl) {
			t.Errorf("e2b/%s: familiar %q names %v", tpl, ref.familiar, ref.names)
		}
	}
}
