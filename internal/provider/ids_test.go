package provider_test

import (
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

func TestValidSandboxID(t *testing.T) {
	for _, id := range []string{"a", "A-b_c.d", "0", strings.Repeat("x", 40)} {
		if err := provider.ValidSandboxID(id, 40); err != nil {
			t.Errorf("ValidSandboxID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", ".a", "_a", "a/b", "..", "a b", "a\x00", "é", strings.Repeat("x", 41)} {
		if err := provider.ValidSandboxID(id, 40); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("ValidSandboxID(%q) = %v, want Invalid", id, err)
		}
	}
}
