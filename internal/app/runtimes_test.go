package app

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/certify"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// TestSupportMatrixIsFresh keeps docs/support-matrix.md equal to what the
// providers declare. Regenerate with:
//
//	go run ./cmd/stacyvm certify matrix > docs/support-matrix.md
func TestSupportMatrixIsFresh(t *testing.T) {
	want := certify.Matrix(SupportMatrix())
	got, err := os.ReadFile("../../docs/support-matrix.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("docs/support-matrix.md is stale; regenerate it with `go run ./cmd/stacyvm certify matrix > docs/support-matrix.md`; want:\n%s", want)
	}
	for _, e := range SupportMatrix() {
		if e.Name == "proot" && (e.Caps.Boundary || !strings.Contains(e.Notes, "NOT an isolation boundary")) {
			t.Errorf("proot row must say loudly it is no isolation boundary: %+v", e)
		}
	}
}

// TestRuntimeHostChecks_AbsentRuntimesAreNotInstalled: runtimes that are
// not installed here are never PASS; unknown names FAIL.
func TestRuntimeHostChecks_AbsentRuntimesAreNotInstalled(t *testing.T) {
	cfg := config.Default(t.TempDir(), false)
	for _, rt := range []string{"kata", "firecracker"} {
		cs := RuntimeHostChecks(context.Background(), cfg, rt)
		if len(cs) == 0 {
			t.Fatalf("%s: no checks", rt)
		}
		if cs[0].Status == provider.CheckPass {
			t.Skipf("%s is installed on this host", rt)
		}
		for _, c := range cs {
			if c.Status == provider.CheckPass {
				t.Errorf("%s check %+v passed on a host without it", rt, c)
			}
		}
		if cs[0].Status != provider.CheckNotInstalled {
			t.Errorf("%s first check = %+v, want NOT INSTALLED", rt, cs[0])
		}
	}
	if cs := RuntimeHostChecks(context.Background(), cfg, "lxc"); len(cs) != 1 || cs[0].Status != provider.CheckFail {
		t.Errorf("unknown runtime checks = %+v, want FAIL", cs)
	}
}
