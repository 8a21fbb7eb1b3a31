package api

import (
	"net/http"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Keys created through the admin API are generated here from crypto/rand,
// returned once in the 201 response and stored only as a SHA-256 hash, with
// their role and tenant. A tenant admin manages its own tenant's keys and
// cannot mint a role above its own.

// keyJSON describes a key; Key is set only in the creation response.
type keyJSON struct {
	ID          string `json:"id"`
	Key         string `json:"key,omitempty"`
	Name        string `json:"name,omitempty"`
	Role        string `json:"role"`
	TenantID    string `json:"tenant_id"`
	ActForUsers bool   `json:"act_for_users"`
	CreatedBy   string `json:"created_by,omitempty"`
	CreatedAt   string `json:"created_at"`
}

func toKeyJSON(k *store.APIKey) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Role: k.Role, TenantID: k.TenantID, ActForUsers: k.ActForUsers,
		CreatedBy: k.CreatedBy, CreatedAt: rfc3339(k.CreatedAt)}
}

func (s *server) governance() (store.Governance, error) {
	if s.sec.gov == nil {
		return nil, errs.New(errs.Unavailable, "tenants, keys and audit need a database (not configured)")
	}
	return s.sec.gov, nil
}

// tenantScope resolves the tenant a tenant-scoped admin call acts on: an
// admin may name any; a tenant admin only its own (another is NotFound, so
// other tenants' existence is not revealed).
func tenantScope(r *http.Request, asked string) (string, error) {
	p := auth.FromContext(r.Context())
	if p.IsAdmin() {
		if asked == "" {
			return "", nil
		}
		return asked, auth.ValidTenantID(asked)
	}
	if asked != "" && asked != p.Tenant {
		return "", errs.New(errs.NotFound, "tenant %s not found", printableID(asked))
	}
	return p.Tenant, nil
}

func printableID(v string) string {
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	out := []rune{}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}

func (s *server) createKey(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	var b struct {
		Name        string `json:"name"`
		Role        string `json:"role"`
		TenantID    string `json:"tenant_id"`
		ActForUsers bool   `json:"act_for_users"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if len(b.Name) > 128 {
		return errs.New(errs.Invalid, "name must be at most 128 characters")
	}
	if err := auth.ValidUserID("name", b.Name); err != nil {
		return err
	}
	role, err := auth.ParseRole(b.Role)
	if err != nil {
		return err
	}
	p := auth.FromContext(r.Context())
	// A worker key is apart from the ranked roles (Allows never grants it
	// from above); only an admin mints one.
	if (role == RoleWorker && !p.IsAdmin()) || (role != RoleWorker && !p.Role.Allows(role)) {
		return errs.New(errs.Forbidden, "a %s cannot create a %s key", p.Role, role)
	}
	tenant, err := tenantScope(r, b.TenantID)
	if err != nil {
		return err
	}
	if tenant == "" {
		tenant = auth.DefaultTenant
	}
	key, id := auth.GenerateKey()
	k := &store.APIKey{ID: id, Hash: auth.HashKey(key), Name: b.Name, Role: string(role), TenantID: tenant,
		ActForUsers: b.ActForUsers, CreatedBy: p.Actor()}
	if err := gov.Keys().Create(r.Context(), k); err != nil {
		return err
	}
	ri := infoFrom(r.Context())
	ri.auditTarget, ri.auditDetail = "key:"+id, "role="+string(role)+" tenant="+tenant
	out := toKeyJSON(k)
	out.Key = key // shown once, never stored
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	tenant, err := tenantScope(r, r.URL.Query().Get("tenant"))
	if err != nil {
		return err
	}
	ks, err := gov.Keys().List(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := make([]keyJSON, 0, len(ks))
	for _, k := range ks {
		out = append(out, toKeyJSON(k))
	}
	writeList(w, out)
	return nil
}

func (s *server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	gov, err := s.governance()
	if err != nil {
		return err
	}
	id := r.PathValue("key")
	tenant, err := tenantScope(r, "")
	if err != nil {
		return err
	}
	ks, err := gov.Keys().List(r.Context(), tenant)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.ID == id {
			if err := gov.Keys().Delete(r.Context(), id); err != nil {
				return err
			}
			infoFrom(r.Context()).auditTarget = "key:" + id
			writeJSON(w, http.StatusOK, statusJSON{"deleted"})
			return nil
		}
	}
	return errs.New(errs.NotFound, "key %s not found", printableID(id))
}

// whoami describes the caller's principal.
func (s *server) whoami(w http.ResponseWriter, r *http.Request) error {
	p := auth.FromContext(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"subject": p.Subject, "role": p.Role, "tenant_id": p.Tenant, "method": p.Method, "act_for_users": p.ActForUsers,
	})
	return nil
}
