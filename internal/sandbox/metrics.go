package sandbox

import (
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Observer receives timings of the service's use cases, so a metrics
// backend (internal/metrics) can record them without this package importing
// it. Implementations must be fast and safe for concurrent use.
type Observer interface {
	// SpawnObserved is called once per Create: source is "cold" (a runtime
	// was started) or "warm" (claimed from a pool); outcome is "ok" or the
	// error class.
	SpawnObserved(provider, source, outcome string, d time.Duration)
	// ExecObserved is called once per Exec that reached a runtime; outcome is
	// "ok", "timeout" or the error class.
	ExecObserved(provider, outcome string, d time.Duration)
}

// outcomeOf names an error for a metric label: "ok" or its class (a closed
// set, so label cardinality stays bounded).
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ToLower(errs.ClassOf(err).Code())
}

func (s *Service) observeSpawn(prov, source string, err error, start time.Time) {
	if s.obs != nil {
		s.obs.SpawnObserved(prov, source, outcomeOf(err), s.now().Sub(start))
	}
}

func (s *Service) observeExec(prov string, res ExecResult, err error, start time.Time) {
	if s.obs == nil {
		return
	}
	outcome := outcomeOf(err)
	if err == nil && res.TimedOut {
		outcome = "timeout"
	}
	s.obs.ExecObserved(prov, outcome, s.now().Sub(start))
}
