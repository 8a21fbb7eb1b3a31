package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// templates implements store.Templates on the templates table; the recipe
// is one JSON document (store.EncodeTemplateBody), shared with the other store.
type templates struct{ s *Store }

const templateColumns = `tenant_id, name, version, body, created_at, updated_at`

func scanTemplate(sc scanner) (*store.Template, error) {
	var (
		t                store.Template
		body             string
		created, updated int64
	)
	if err := sc.Scan(&t.TenantID, &t.Name, &t.Version, &body, &created, &updated); err != nil {
		return nil, err
	}
	if err := store.DecodeTemplateBody([]byte(body), &t); err != nil {
		return nil, err
	}
	t.CreatedAt = time.Unix(0, created).UTC()
	t.UpdatedAt = time.Unix(0, updated).UTC()
	return &t, nil
}

func (r *templates) Create(ctx context.Context, t *store.Template) error {
	if t == nil || t.Name == "" {
		return errs.New(errs.Invalid, "template name is required")
	}
	now := time.Now().UTC()
	t.Version, t.CreatedAt, t.UpdatedAt = 1, now, now
	body, err := store.EncodeTemplateBody(t)
	if err != nil {
		return err
	}
	err = r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			t.TenantID, t.Name, t.Version, body, now.UnixNano(), now.UnixNano())
		return classify(ctx, err, "create template %s", t.Name)
	})
	if errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "template %s already exists", t.Name)
	}
	return err
}

func (r *templates) get(ctx context.Context, q queryRower, tenantID, name string) (*store.Template, error) {
	t, err := scanTemplate(q.QueryRowContext(ctx, `SELECT `+templateColumns+` FROM templates WHERE tenant_id = ? AND name = ?`, tenantID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "template %s not found", name)
	}
	if err != nil && !errs.Is(err, errs.Internal) {
		return nil, classify(ctx, err, "get template %s", name)
	}
	return t, err
}

func (r *templates) Get(ctx context.Context, tenantID, name string) (*store.Template, error) {
	return r.get(ctx, r.s.db, tenantID, name)
}

func (r *templates) List(ctx context.Context, tenantID string, allTenants bool) ([]*store.Template, error) {
	q, args := `SELECT `+templateColumns+` FROM templates WHERE tenant_id = ? ORDER BY name`, []any{tenantID}
	if allTenants {
		q, args = `SELECT `+templateColumns+` FROM templates ORDER BY tenant_id, name`, nil
	}
	rows, err := r.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, err, "list templates")
	}
	defer rows.Close()
	out := []*store.Template{}
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, classify(ctx, err, "list templates")
		}
		out = append(out, t)
	}
	return out, classify(ctx, rows.Err(), "list templates")
}

func (r *templates) Update(ctx context.Context, tenantID, name string, fn func(t *store.Template) error) (*store.Template, error) {
	var out *store.Template
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		t, err := r.get(ctx, tx, tenantID, name)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		if t.TenantID != tenantID || t.Name != name {
			return errs.New(errs.Invalid, "a template's name and tenant cannot change")
		}
		t.Version++
		t.UpdatedAt = time.Now().UTC()
		body, err := store.EncodeTemplateBody(t)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE templates SET version = ?, body = ?, updated_at = ? WHERE tenant_id = ? AND name = ?`,
			t.Version, body, t.UpdatedAt.UnixNano(), tenantID, name)
		out = t
		return classify(ctx, err, "update template %s", name)
	})
	return out, err
}

func (r *templates) Delete(ctx context.Context, tenantID, name string) error {
	return r.s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM templates WHERE tenant_id = ? AND name = ?`, tenantID, name)
		if err != nil {
			return classify(ctx, err, "delete template %s", name)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.New(errs.NotFound, "template %s not found", name)
		}
		return nil
	})
}

// quotas implements store.Quotas on the quotas table.
type quotas struct{ s *Store }

const quotaColumns = `owner, max_sandboxes, max_ttl_ns, max_exec_timeout_ns, updated_at`

func scanQuota(sc scanner) (*store.Quota, error) {
	var q store.Quota
	var ttl, exec, updated int64
	if err := sc.Scan(&q.Owner, &q.MaxSandboxes, &ttl, &exec, &updated); err != nil {
		return nil, err
	}
	q.MaxTTL, q.MaxExecTimeout = time.Duration(ttl), time.Duration(exec)
	q.UpdatedAt = time.Unix(0, updated).UTC()
	return &q, nil
}

func (r *quotas) Put(ctx context.Context, q *store.Quota) error {
	if q == nil || q.Owner == "" {
		return errs.New(errs.Invalid, "quota owner is required")
	}
	if q.MaxSandboxes < 0 || q.MaxTTL < 0 || q.MaxExecTimeout < 0 {
		return errs.New(errs.Invalid, "quota limits must not be negative")
	}
	q.UpdatedAt = time.Now().UTC()
	return r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO quotas (`+quotaColumns+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (owner) DO UPDATE SET max_sandboxes = excluded.max_sandboxes,
			max_ttl_ns = excluded.max_ttl_ns, max_exec_timeout_ns = excluded.max_exec_timeout_ns,
			updated_at = excluded.updated_at`,
			q.Owner, q.MaxSandboxes, int64(q.MaxTTL), int64(q.MaxExecTimeout), q.UpdatedAt.UnixNano())
		return classify(ctx, err, "put quota for %s", q.Owner)
	})
}

func (r *quotas) Get(ctx context.Context, owner string) (*store.Quota, error) {
	q, err := scanQuota(r.s.db.QueryRowContext(ctx, `SELECT `+quotaColumns+` FROM quotas WHERE owner = ?`, owner))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "no quota for owner %s", owner)
	}
	if err != nil {
		return nil, classify(ctx, err, "get quota for %s", owner)
	}
	return q, nil
}

func (r *quotas) List(ctx context.Context) ([]*store.Quota, error) {
	rows, err := r.s.db.QueryContext(ctx, `SELECT `+quotaColumns+` FROM quotas ORDER BY owner`)
	if err != nil {
		return nil, classify(ctx, err, "list quotas")
	}
	defer rows.Close()
	out := []*store.Quota{}
	for rows.Next() {
		q, err := scanQuota(rows)
		if err != nil {
			return nil, classify(ctx, err, "list quotas")
		}
		out = append(out, q)
	}
	return out, classify(ctx, rows.Err(), "list quotas")
}

func (r *quotas) Delete(ctx context.Context, owner string) error {
	return r.s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM quotas WHERE owner = ?`, owner)
		if err != nil {
			return classify(ctx, err, "delete quota for %s", owner)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.New(errs.NotFound, "no quota for owner %s", owner)
		}
		return nil
	})
}
