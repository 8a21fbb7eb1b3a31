package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
	"github.com/stacyvm/stacyvm/internal/store/storetest"
)

func TestGovernanceContract(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.Governance {
		return open(t, filepath.Join(t.TempDir(), "stacyvm.db")).Governance()
	})
}

// BenchmarkAuditAppend is the cost the operation audit adds to each exec or
// file call (one synchronous insert).
func BenchmarkAuditAppend(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a := s.Governance().Audit()
	for b.Loop() {
		if err := a.Append(b.Context(), &store.AuditEvent{Kind: store.AuditOp, TenantID: "t", Actor: "a", Action: "sandbox.exec", Target: "sb-1", Detail: `{"command":"echo hi"}`}); err != nil {
			b.Fatal(err)
		}
	}
}
