package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// auditLockID serializes audit appends (see Append).
const auditLockID int64 = 0x5374616379564d02

// Governance returns the tenants, keys and audit repositories.
func (s *Store) Governance() store.Governance { return governance{s} }

type governance struct{ s *Store }

func (g governance) Tenants() store.Tenants { return tenants(g) }
func (g governance) Keys() store.Keys       { return apiKeys(g) }
func (g governance) Audit() store.Audit     { return audit(g) }

// nowIfZero fills a zero time with now.
func nowIfZero(t *time.Time) {
	if t.IsZero() {
		*t = now()
	}
}

type tenants governance

func (r tenants) Create(ctx context.Context, t *store.Tenant) error {
	nowIfZero(&t.CreatedAt)
	_, err := r.s.pool.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)`,
		t.ID, t.Name, clamp(t.CreatedAt))
	if err = classify(ctx, err, "create tenant %s", t.ID); errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "tenant %s already exists", t.ID)
	}
	return err
}

func (r tenants) Get(ctx context.Context, id string) (*store.Tenant, error) {
	t, err := scanTenant(r.s.pool.QueryRow(ctx, `SELECT id, name, created_at FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "tenant %s not found", id)
	}
	if err != nil {
		return nil, classify(ctx, err, "get tenant")
	}
	return t, nil
}

func scanTenant(row pgx.Row) (*store.Tenant, error) {
	var t store.Tenant
	if err := row.Scan(&t.ID, &t.Name, &t.CreatedAt); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

func (r tenants) List(ctx context.Context) ([]*store.Tenant, error) {
	return collect(ctx, r.s, "list tenants", scanTenant, `SELECT id, name, created_at FROM tenants ORDER BY id`)
}

// Delete removes the tenant; its members and policies go with it (ON
// DELETE CASCADE).
func (r tenants) Delete(ctx context.Context, id string) error {
	return r.s.execOne(ctx, "tenant "+id, `DELETE FROM tenants WHERE id = $1`, id)
}

func (r tenants) PutMember(ctx context.Context, m *store.Member) error {
	nowIfZero(&m.CreatedAt)
	_, err := r.s.pool.Exec(ctx, `INSERT INTO tenant_members (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role`,
		m.TenantID, m.UserID, m.Role, clamp(m.CreatedAt))
	if isCode(err, "23503") { // foreign key: no such tenant
		return errs.Wrap(errs.NotFound, err, "tenant %s not found", m.TenantID)
	}
	return classify(ctx, err, "put member")
}

func (r tenants) DeleteMember(ctx context.Context, tenantID, userID string) error {
	return r.s.execOne(ctx, "member "+userID, `DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
}

const memberColumns = `tenant_id, user_id, role, created_at`

func scanMember(row pgx.Row) (*store.Member, error) {
	var m store.Member
	if err := row.Scan(&m.TenantID, &m.UserID, &m.Role, &m.CreatedAt); err != nil {
		return nil, err
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return &m, nil
}

func (r tenants) GetMember(ctx context.Context, tenantID, userID string) (*store.Member, error) {
	m, err := scanMember(r.s.pool.QueryRow(ctx, `SELECT `+memberColumns+` FROM tenant_members WHERE tenant_id = $1 AND user_id = $2`,
		tenantID, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "member %s not found", userID)
	}
	if err != nil {
		return nil, classify(ctx, err, "get member")
	}
	return m, nil
}

func (r tenants) ListMembers(ctx context.Context, tenantID string) ([]*store.Member, error) {
	return collect(ctx, r.s, "list members", scanMember,
		`SELECT `+memberColumns+` FROM tenant_members WHERE tenant_id = $1 ORDER BY user_id`, tenantID)
}

func (r tenants) CreatePolicy(ctx context.Context, p *store.Policy) error {
	nowIfZero(&p.CreatedAt)
	_, err := r.s.pool.Exec(ctx, `INSERT INTO policies (id, tenant_id, kind, effect, pattern, priority, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.TenantID, p.Kind, p.Effect, p.Pattern, p.Priority, clamp(p.CreatedAt))
	if isCode(err, "23503") {
		return errs.Wrap(errs.NotFound, err, "tenant %s not found", p.TenantID)
	}
	if err = classify(ctx, err, "create policy"); errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "policy %s already exists", p.ID)
	}
	return err
}

func (r tenants) DeletePolicy(ctx context.Context, tenantID, id string) error {
	return r.s.execOne(ctx, "policy "+id, `DELETE FROM policies WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

func scanPolicy(row pgx.Row) (*store.Policy, error) {
	var p store.Policy
	if err := row.Scan(&p.ID, &p.TenantID, &p.Kind, &p.Effect, &p.Pattern, &p.Priority, &p.CreatedAt); err != nil {
		return nil, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}

func (r tenants) ListPolicies(ctx context.Context, tenantID string) ([]*store.Policy, error) {
	return collect(ctx, r.s, "list policies", scanPolicy, `SELECT id, tenant_id, kind, effect, pattern, priority, created_at
		FROM policies WHERE tenant_id = $1 ORDER BY priority DESC, id`, tenantID)
}

type apiKeys governance

const keyColumns = `id, hash, name, role, tenant_id, act_for_users, created_by, created_at`

func scanKey(row pgx.Row) (*store.APIKey, error) {
	var k store.APIKey
	if err := row.Scan(&k.ID, &k.Hash, &k.Name, &k.Role, &k.TenantID, &k.ActForUsers, &k.CreatedBy, &k.CreatedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return &k, nil
}

func (r apiKeys) Create(ctx context.Context, k *store.APIKey) error {
	nowIfZero(&k.CreatedAt)
	_, err := r.s.pool.Exec(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.Hash, k.Name, k.Role, k.TenantID, k.ActForUsers, k.CreatedBy, clamp(k.CreatedAt))
	if err = classify(ctx, err, "create key"); errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "key %s already exists", k.ID)
	}
	return err
}

func (r apiKeys) GetByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanKey(r.s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "key not found")
	}
	if err != nil {
		return nil, classify(ctx, err, "get key")
	}
	return k, nil
}

func (r apiKeys) List(ctx context.Context, tenantID string) ([]*store.APIKey, error) {
	if tenantID == "" {
		return collect(ctx, r.s, "list keys", scanKey, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	}
	return collect(ctx, r.s, "list keys", scanKey, `SELECT `+keyColumns+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
}

func (r apiKeys) Delete(ctx context.Context, id string) error {
	return r.s.execOne(ctx, "key "+id, `DELETE FROM api_keys WHERE id = $1`, id)
}

type audit governance

const auditColumns = `seq, at, kind, tenant_id, actor, action, target, detail, remote_addr, result, request_id`

// Append inserts e and sets e.Seq. Appends take a transaction advisory lock
// first: identity values are handed out at insert, not at commit, so two
// concurrent appends could otherwise commit out of order and a reader
// paging with AfterSeq would skip the late one for good.
func (r audit) Append(ctx context.Context, e *store.AuditEvent) error {
	nowIfZero(&e.At)
	return r.s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockID); err != nil {
			return classify(ctx, err, "append audit event")
		}
		err := tx.QueryRow(ctx, `INSERT INTO audit_events (at, kind, tenant_id, actor, action, target, detail, remote_addr, result, request_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq`,
			clamp(e.At), e.Kind, e.TenantID, e.Actor, e.Action, e.Target, e.Detail, e.RemoteAddr, e.Result, e.RequestID).Scan(&e.Seq)
		return classify(ctx, err, "append audit event")
	})
}

func scanAudit(row pgx.Row) (*store.AuditEvent, error) {
	var e store.AuditEvent
	if err := row.Scan(&e.Seq, &e.At, &e.Kind, &e.TenantID, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.RemoteAddr, &e.Result, &e.RequestID); err != nil {
		return nil, err
	}
	e.At = e.At.UTC()
	return &e, nil
}

func (r audit) List(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
	q := &query{}
	if f.Kind != "" {
		q.add("kind = $?", f.Kind)
	}
	if f.TenantID != "" {
		q.add("tenant_id = $?", f.TenantID)
	}
	if !f.Since.IsZero() {
		q.add("at >= $?", clamp(f.Since))
	}
	if f.AfterSeq > 0 {
		q.add("seq > $?", f.AfterSeq)
	}
	text := `SELECT ` + auditColumns + ` FROM audit_events` + q.where() + ` ORDER BY seq`
	if f.Limit > 0 {
		text += " LIMIT " + q.arg(f.Limit)
	}
	return collect(ctx, r.s, "list audit events", scanAudit, text, q.args...)
}

func (r audit) Prune(ctx context.Context, before time.Time) (int, error) {
	tag, err := r.s.pool.Exec(ctx, `DELETE FROM audit_events WHERE at < $1`, clamp(before))
	if err != nil {
		return 0, classify(ctx, err, "prune audit events")
	}
	return int(tag.RowsAffected()), nil
}

var _ store.Governance = governance{}
