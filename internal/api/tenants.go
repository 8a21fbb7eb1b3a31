package api

import (
	"net/http"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

type tenantJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	CreatedAt string `json:"created_at"`
}

type memberJSON struct {
	UserID    string `json:"user_id"`
	Role      string `json:"role"`
	CreatedAt string `json:"created_at"`
}

type policyJSON struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	Kind      string `json:"kind"`
	Effect    string `json:"effect"`
	Pattern   string `json:"pattern"`
	Priority  int    `json:"priority"`
	CreatedAt string `json:"created_at"`
}

func toPolicyJSON(p *store.Policy) policyJSON {
	return policyJSON{ID: p.ID, TenantID: p.TenantID, Kind: p.Kind, Effect: p.Effect, Pattern: p.Pattern,
		Priority: p.Priority, CreatedAt: rfc3339(p.CreatedAt)}
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	var b struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := auth.ValidTenantID(b.ID); err != nil {
		return err
	}
	if len(b.Name) > 256 {
		return errs.New(errs.Invalid, "name must be at most 256 characters")
	}
	t := &store.Tenant{ID: b.ID, Name: b.Name}
	if err := gov.Tenants().Create(r.Context(), t); err != nil {
		return err
	}
	infoFrom(r.Context()).auditTarget = "tenant:" + t.ID
	writeJSON(w, http.StatusCreated, tenantJSON{ID: t.ID, Name: t.Name, CreatedAt: rfc3339(t.CreatedAt)})
	return nil
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	ts, err := gov.Tenants().List(r.Context())
	if err != nil {
		return err
	}
	out := make([]tenantJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenantJSON{ID: t.ID, Name: t.Name, CreatedAt: rfc3339(t.CreatedAt)})
	}
	writeList(w, out)
	return nil
}

// pathTenant is the {tenant} of the path, scoped to the caller.
func (s *server) pathTenant(r *http.Request) (store.Governance, string, error) {
	gov, err := s.governance()
	if err != nil {
		return nil, "", err
	}
	asked := r.PathValue("tenant")
	if err := auth.ValidTenantID(asked); err != nil {
		return nil, "", errs.New(errs.NotFound, "tenant %s not found", printableID(asked))
	}
	t, err := tenantScope(r, asked)
	return gov, t, err
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	t, err := gov.Tenants().Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tenantJSON{ID: t.ID, Name: t.Name, CreatedAt: rfc3339(t.CreatedAt)})
	return nil
}

func (s *server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	if err := gov.Tenants().Delete(r.Context(), id); err != nil {
		return err
	}
	infoFrom(r.Context()).auditTarget = "tenant:" + id
	writeJSON(w, http.StatusOK, statusJSON{"deleted"})
	return nil
}

func (s *server) listMembers(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	if _, err := gov.Tenants().Get(r.Context(), id); err != nil {
		return err
	}
	ms, err := gov.Tenants().ListMembers(r.Context(), id)
	if err != nil {
		return err
	}
	out := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, memberJSON{UserID: m.UserID, Role: m.Role, CreatedAt: rfc3339(m.CreatedAt)})
	}
	writeList(w, out)
	return nil
}

func (s *server) putMember(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	user := r.PathValue("user")
	if err := auth.ValidUserID("user", user); err != nil {
		return err
	}
	var b struct {
		Role string `json:"role"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	role, err := auth.ParseRole(b.Role)
	if err != nil {
		return err
	}
	if role == RoleAdmin || role == RoleWorker {
		return errs.New(errs.Invalid, "a member role is viewer, operator or tenant_admin")
	}
	m := &store.Member{TenantID: id, UserID: user, Role: string(role)}
	if err := gov.Tenants().PutMember(r.Context(), m); err != nil {
		return err
	}
	ri := infoFrom(r.Context())
	ri.auditTarget, ri.auditDetail = "tenant:"+id+"/member:"+user, "role="+string(role)
	writeJSON(w, http.StatusOK, memberJSON{UserID: m.UserID, Role: m.Role, CreatedAt: rfc3339(m.CreatedAt)})
	return nil
}

func (s *server) deleteMember(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	user := r.PathValue("user")
	if err := gov.Tenants().DeleteMember(r.Context(), id, user); err != nil {
		return err
	}
	infoFrom(r.Context()).auditTarget = "tenant:" + id + "/member:" + user
	writeJSON(w, http.StatusOK, statusJSON{"deleted"})
	return nil
}

func (s *server) listPolicies(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	if _, err := gov.Tenants().Get(r.Context(), id); err != nil {
		return err
	}
	ps, err := gov.Tenants().ListPolicies(r.Context(), id)
	if err != nil {
		return err
	}
	out := make([]policyJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, toPolicyJSON(p))
	}
	writeList(w, out)
	return nil
}

// createPolicy validates the rule (a pattern that does not compile is 400
// here, never an error at enforcement time) and stores it.
func (s *server) createPolicy(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	var b struct {
		ID       string `json:"id"`
		Kind     string `json:"kind"`
		Effect   string `json:"effect"`
		Pattern  string `json:"pattern"`
		Priority int    `json:"priority"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if _, err := auth.CompileRule(auth.Rule{Kind: b.Kind, Effect: b.Effect, Pattern: b.Pattern}); err != nil {
		return err
	}
	if b.ID == "" {
		b.ID = "pol-" + randomHex(6)
	} else if err := auth.ValidTenantID(b.ID); err != nil {
		return errs.New(errs.Invalid, "policy id may only hold lowercase letters, digits, '.', '_' and '-'")
	}
	if b.Priority < -1000000 || b.Priority > 1000000 {
		return errs.New(errs.Invalid, "priority must be between -1000000 and 1000000")
	}
	p := &store.Policy{ID: b.ID, TenantID: id, Kind: b.Kind, Effect: b.Effect, Pattern: b.Pattern, Priority: b.Priority}
	if err := gov.Tenants().CreatePolicy(r.Context(), p); err != nil {
		return err
	}
	ri := infoFrom(r.Context())
	ri.auditTarget, ri.auditDetail = "tenant:"+id+"/policy:"+p.ID, p.Effect+" "+p.Kind+" "+p.Pattern
	writeJSON(w, http.StatusCreated, toPolicyJSON(p))
	return nil
}

func (s *server) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	gov, id, err := s.pathTenant(r)
	if err != nil {
		return err
	}
	pid := r.PathValue("policy")
	if err := gov.Tenants().DeletePolicy(r.Context(), id, pid); err != nil {
		return err
	}
	infoFrom(r.Context()).auditTarget = "tenant:" + id + "/policy:" + pid
	writeJSON(w, http.StatusOK, statusJSON{"deleted"})
	return nil
}
