package sandbox

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Tenancy: every sandbox belongs to a tenant and an owner. The caller's
// principal travels in the context (auth.WithPrincipal, set by the API);
// a context without one is the server itself (reaper, reconcile, warm pool).
//
// visible is the one check behind every lookup by id (Service.live), so
// every operation on an existing sandbox (get, exec, files, processes,
// previews, destroy, extend, logs, stats) inherits it. Objects of another
// tenant are NotFound, never Forbidden: their existence is not revealed.

// visible returns NotFound unless the caller of ctx may see rec.
func visible(ctx context.Context, rec *store.Sandbox) error {
	if !auth.FromContext(ctx).CanSee(rec.TenantID) {
		return errs.New(errs.NotFound, "sandbox %s not found", rec.ID)
	}
	return nil
}

// scopeRequest stamps the caller's tenant and owner on req. The tenant is
// always the principal's (an admin may name another one). The owner defaults
// to the principal's subject; naming another owner (X-User-ID, owner_id)
// needs a principal allowed to act for users.
func scopeRequest(ctx context.Context, req CreateRequest) (CreateRequest, error) {
	p := auth.FromContext(ctx)
	if p == nil { // the server itself
		if req.TenantID == "" {
			req.TenantID = auth.DefaultTenant
		}
		return req, nil
	}
	if err := auth.ValidUserID("owner_id", req.OwnerID); err != nil {
		return req, err
	}
	switch {
	case p.IsAdmin() && req.TenantID != "":
		if err := auth.ValidTenantID(req.TenantID); err != nil {
			return req, err
		}
	case p.Tenant != "":
		req.TenantID = p.Tenant
	default:
		return req, errs.New(errs.Forbidden, "this principal belongs to no tenant")
	}
	switch {
	case req.OwnerID == "":
		req.OwnerID = p.Subject
	case req.OwnerID != p.Subject && !p.ActForUsers && !p.IsAdmin():
		return req, errs.New(errs.Forbidden, "this principal may not act for other users (owner %q)", req.OwnerID)
	}
	return req, nil
}

// scopeFilter restricts a listing to the caller's tenant (admins: all, or
// the tenant they ask for).
func scopeFilter(ctx context.Context, tenant string) (string, error) {
	p := auth.FromContext(ctx)
	if p == nil || p.IsAdmin() {
		return tenant, nil
	}
	if !p.CanSee(p.Tenant) || p.Tenant == "" {
		return "", errs.New(errs.Forbidden, "this principal belongs to no tenant")
	}
	return p.Tenant, nil
}
