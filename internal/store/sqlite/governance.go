package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Governance returns the tenants, keys and audit repositories.
func (s *Store) Governance() store.Governance { return governance{s} }

type governance struct{ s *Store }

func (g governance) Tenants() store.Tenants { return tenants(g) }
func (g governance) Keys() store.Keys       { return apiKeys(g) }
func (g governance) Audit() store.Audit     { return audit(g) }

func nowIfZero(t *time.Time) {
	if t.IsZero() {
		*t = time.Now().UTC()
	}
}

// exec runs one write statement; a statement that touches no row is NotFound.
func (s *Store) execOne(ctx context.Context, what string, q string, args ...any) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return classify(ctx, err, "%s", what)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.New(errs.NotFound, "%s: not found", what)
		}
		return nil
	})
}

type tenants governance

func (r tenants) Create(ctx context.Context, t *store.Tenant) error {
	nowIfZero(&t.CreatedAt)
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Name, clampNanos(t.CreatedAt))
		return classify(ctx, err, "create tenant %s", t.ID)
	})
	if errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "tenant %s already exists", t.ID)
	}
	return err
}

func (r tenants) Get(ctx context.Context, id string) (*store.Tenant, error) {
	var t store.Tenant
	var at int64
	err := r.s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE id = ?`, id).Scan(&t.ID, &t.Name, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "tenant %s not found", id)
	}
	if err != nil {
		return nil, classify(ctx, err, "get tenant")
	}
	t.CreatedAt = time.Unix(0, at).UTC()
	return &t, nil
}

func (r tenants) List(ctx context.Context) ([]*store.Tenant, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT id, name, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, classify(ctx, err, "list tenants")
	}
	defer rows.Close()
	out := []*store.Tenant{}
	for rows.Next() {
		var t store.Tenant
		var at int64
		if err := rows.Scan(&t.ID, &t.Name, &at); err != nil {
			return nil, classify(ctx, err, "list tenants")
		}
		t.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, &t)
	}
	return out, classify(ctx, rows.Err(), "list tenants")
}

func (r tenants) Delete(ctx context.Context, id string) error {
	return r.s.execOne(ctx, "tenant "+id, `DELETE FROM tenants WHERE id = ?`, id)
}

func (r tenants) PutMember(ctx context.Context, m *store.Member) error {
	nowIfZero(&m.CreatedAt)
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tenant_members (tenant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role`,
			m.TenantID, m.UserID, m.Role, clampNanos(m.CreatedAt))
		return classify(ctx, err, "put member")
	})
	if errs.Is(err, errs.Invalid) { // foreign key: no such tenant
		return errs.New(errs.NotFound, "tenant %s not found", m.TenantID)
	}
	return err
}

func (r tenants) DeleteMember(ctx context.Context, tenantID, userID string) error {
	return r.s.execOne(ctx, "member "+userID, `DELETE FROM tenant_members WHERE tenant_id = ? AND user_id = ?`, tenantID, userID)
}

func (r tenants) GetMember(ctx context.Context, tenantID, userID string) (*store.Member, error) {
	var m store.Member
	var at int64
	err := r.s.db.QueryRowContext(ctx, `SELECT tenant_id, user_id, role, created_at FROM tenant_members WHERE tenant_id = ? AND user_id = ?`,
		tenantID, userID).Scan(&m.TenantID, &m.UserID, &m.Role, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "member %s not found", userID)
	}
	if err != nil {
		return nil, classify(ctx, err, "get member")
	}
	m.CreatedAt = time.Unix(0, at).UTC()
	return &m, nil
}

func (r tenants) ListMembers(ctx context.Context, tenantID string) ([]*store.Member, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT tenant_id, user_id, role, created_at FROM tenant_members WHERE tenant_id = ? ORDER BY user_id`, tenantID)
	if err != nil {
		return nil, classify(ctx, err, "list members")
	}
	defer rows.Close()
	out := []*store.Member{}
	for rows.Next() {
		var m store.Member
		var at int64
		if err := rows.Scan(&m.TenantID, &m.UserID, &m.Role, &at); err != nil {
			return nil, classify(ctx, err, "list members")
		}
		m.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, &m)
	}
	return out, classify(ctx, rows.Err(), "list members")
}

func (r tenants) CreatePolicy(ctx context.Context, p *store.Policy) error {
	nowIfZero(&p.CreatedAt)
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO policies (id, tenant_id, kind, effect, pattern, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.TenantID, p.Kind, p.Effect, p.Pattern, p.Priority, clampNanos(p.CreatedAt))
		return classify(ctx, err, "create policy")
	})
	if errs.Is(err, errs.Invalid) {
		return errs.New(errs.NotFound, "tenant %s not found", p.TenantID)
	}
	return err
}

func (r tenants) DeletePolicy(ctx context.Context, tenantID, id string) error {
	return r.s.execOne(ctx, "policy "+id, `DELETE FROM policies WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

func (r tenants) ListPolicies(ctx context.Context, tenantID string) ([]*store.Policy, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT id, tenant_id, kind, effect, pattern, priority, created_at FROM policies
		WHERE tenant_id = ? ORDER BY priority DESC, id`, tenantID)
	if err != nil {
		return nil, classify(ctx, err, "list policies")
	}
	defer rows.Close()
	out := []*store.Policy{}
	for rows.Next() {
		var p store.Policy
		var at int64
		if err := rows.Scan(&p.ID, &p.TenantID, &p.Kind, &p.Effect, &p.Pattern, &p.Priority, &at); err != nil {
			return nil, classify(ctx, err, "list policies")
		}
		p.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, &p)
	}
	return out, classify(ctx, rows.Err(), "list policies")
}

type apiKeys governance

const keyColumns = `id, hash, name, role, tenant_id, act_for_users, created_by, created_at`

func scanKey(sc scanner) (*store.APIKey, error) {
	var k store.APIKey
	var at int64
	if err := sc.Scan(&k.ID, &k.Hash, &k.Name, &k.Role, &k.TenantID, &k.ActForUsers, &k.CreatedBy, &at); err != nil {
		return nil, err
	}
	k.CreatedAt = time.Unix(0, at).UTC()
	return &k, nil
}

func (r apiKeys) Create(ctx context.Context, k *store.APIKey) error {
	nowIfZero(&k.CreatedAt)
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Hash, k.Name, k.Role, k.TenantID, k.ActForUsers, k.CreatedBy, clampNanos(k.CreatedAt))
		return classify(ctx, err, "create key")
	})
	if errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "key %s already exists", k.ID)
	}
	return err
}

func (r apiKeys) GetByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanKey(r.s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "key not found")
	}
	if err != nil {
		return nil, classify(ctx, err, "get key")
	}
	return k, nil
}

func (r apiKeys) List(ctx context.Context, tenantID string) ([]*store.APIKey, error) {
	q, args := `SELECT `+keyColumns+` FROM api_keys`, []any{}
	if tenantID != "" {
		q, args = q+` WHERE tenant_id = ?`, append(args, tenantID)
	}
	rows, err := r.s.db.QueryContext(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, classify(ctx, err, "list keys")
	}
	defer rows.Close()
	out := []*store.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, classify(ctx, err, "list keys")
		}
		out = append(out, k)
	}
	return out, classify(ctx, rows.Err(), "list keys")
}

func (r apiKeys) Delete(ctx context.Context, id string) error {
	return r.s.execOne(ctx, "key "+id, `DELETE FROM api_keys WHERE id = ?`, id)
}

type audit governance

const auditColumns = `seq, at, kind, tenant_id, actor, action, target, detail, remote_addr, result, request_id`

func (r audit) Append(ctx context.Context, e *store.AuditEvent) error {
	nowIfZero(&e.At)
	return r.s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_events (at, kind, tenant_id, actor, action, target, detail, remote_addr, result, request_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			clampNanos(e.At), e.Kind, e.TenantID, e.Actor, e.Action, e.Target, e.Detail, e.RemoteAddr, e.Result, e.RequestID)
		if err != nil {
			return classify(ctx, err, "append audit event")
		}
		e.Seq, _ = res.LastInsertId()
		return nil
	})
}

func (r audit) List(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
	var where []string
	var args []any
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.TenantID != "" {
		where, args = append(where, "tenant_id = ?"), append(args, f.TenantID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, clampNanos(f.Since))
	}
	if f.AfterSeq > 0 {
		where, args = append(where, "seq > ?"), append(args, f.AfterSeq)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq"
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := r.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, err, "list audit events")
	}
	defer rows.Close()
	out := []*store.AuditEvent{}
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &e.TenantID, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.RemoteAddr, &e.Result, &e.RequestID); err != nil {
			return nil, classify(ctx, err, "list audit events")
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, &e)
	}
	return out, classify(ctx, rows.Err(), "list audit events")
}

func (r audit) Prune(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE at < ?`, clampNanos(before))
		if err != nil {
			return classify(ctx, err, "prune audit events")
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

var _ store.Governance = governance{}
