package api

import (
	"net/http"

	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// quotaJSON is API.md's quota: {max_sandboxes, max_ttl, max_exec_timeout}
// (durations as Go duration strings, "" = no limit), plus owner.
type quotaJSON struct {
	Owner          string `json:"owner"`
	MaxSandboxes   int    `json:"max_sandboxes"`
	MaxTTL         string `json:"max_ttl"`
	MaxExecTimeout string `json:"max_exec_timeout"`
	UpdatedAt      string `json:"updated_at,omitempty"`
}

func toQuotaJSON(q *sandbox.Quota) quotaJSON {
	return quotaJSON{Owner: q.Owner, MaxSandboxes: q.MaxSandboxes, MaxTTL: durationString(q.MaxTTL),
		MaxExecTimeout: durationString(q.MaxExecTimeout), UpdatedAt: rfc3339(q.UpdatedAt)}
}

func (s *server) listQuotas(w http.ResponseWriter, r *http.Request) error {
	qs, err := s.svc.ListQuotas(r.Context())
	if err != nil {
		return err
	}
	out := make([]quotaJSON, 0, len(qs))
	for _, q := range qs {
		out = append(out, toQuotaJSON(q))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) quotaSummary(w http.ResponseWriter, r *http.Request) error {
	sum, err := s.svc.SummarizeQuotas(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{
		"total": sum.Total, "with_max_sandboxes": sum.WithMaxSandboxes,
		"with_max_ttl": sum.WithMaxTTL, "with_max_exec_timeout": sum.WithMaxExecTimeout,
	})
	return nil
}

// quotaOwner is the {owner} path value, validated like X-User-ID.
func quotaOwner(r *http.Request) (string, error) {
	o := r.PathValue("owner")
	if err := requireField("owner", o); err != nil {
		return "", err
	}
	return o, validUserID("owner", o)
}

func (s *server) getQuota(w http.ResponseWriter, r *http.Request) error {
	owner, err := quotaOwner(r)
	if err != nil {
		return err
	}
	q, err := s.svc.GetQuota(r.Context(), owner)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQuotaJSON(q))
	return nil
}

func (s *server) putQuota(w http.ResponseWriter, r *http.Request) error {
	owner, err := quotaOwner(r)
	if err != nil {
		return err
	}
	var b struct {
		MaxSandboxes   int    `json:"max_sandboxes"`
		MaxTTL         string `json:"max_ttl"`
		MaxExecTimeout string `json:"max_exec_timeout"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	ttl, err := parseDuration("max_ttl", b.MaxTTL)
	if err != nil {
		return err
	}
	exec, err := parseDuration("max_exec_timeout", b.MaxExecTimeout)
	if err != nil {
		return err
	}
	q := &sandbox.Quota{Owner: owner, MaxSandboxes: b.MaxSandboxes, MaxTTL: ttl, MaxExecTimeout: exec}
	if err := s.svc.PutQuota(r.Context(), q); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toQuotaJSON(q))
	return nil
}

func (s *server) deleteQuota(w http.ResponseWriter, r *http.Request) error {
	owner, err := quotaOwner(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteQuota(r.Context(), owner); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) quotaUsage(w http.ResponseWriter, r *http.Request) error {
	owner, err := quotaOwner(r)
	if err != nil {
		return err
	}
	u, err := s.svc.OwnerUsage(r.Context(), owner)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"owner": u.Owner, "active_sandboxes": u.ActiveSandboxes, "has_quota": u.HasQuota,
		"max_sandboxes": u.MaxSandboxes, "max_ttl": durationString(u.MaxTTL),
		"max_exec_timeout": durationString(u.MaxExecTimeout),
	})
	return nil
}
