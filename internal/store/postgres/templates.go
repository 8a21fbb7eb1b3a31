package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// templates implements store.Templates on the templates table; the recipe
// is one JSON document (store.EncodeTemplateBody), shared with the other store.
type templates struct{ s *Store }

const templateColumns = `tenant_id, name, version, body, created_at, updated_at`

func scanTemplate(row pgx.Row) (*store.Template, error) {
	var (
		t    store.Template
		body []byte
	)
	if err := row.Scan(&t.TenantID, &t.Name, &t.Version, &body, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return nil, err
	}
	if err := store.DecodeTemplateBody(body, &t); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return &t, nil
}

func (r *templates) Create(ctx context.Context, t *store.Template) error {
	if t == nil || t.Name == "" {
		return errs.New(errs.Invalid, "template name is required")
	}
	n := now()
	t.Version, t.CreatedAt, t.UpdatedAt = 1, n, n
	body, err := store.EncodeTemplateBody(t)
	if err != nil {
		return err
	}
	_, err = r.s.pool.Exec(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.TenantID, t.Name, t.Version, body, n, n)
	if err = classify(ctx, err, "create template %s", t.Name); errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "template %s already exists", t.Name)
	}
	return err
}

func (r *templates) get(ctx context.Context, row pgx.Row, name string) (*store.Template, error) {
	t, err := scanTemplate(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "template %s not found", name)
	}
	if err != nil && !classified(err) {
		return nil, classify(ctx, err, "get template %s", name)
	}
	return t, err
}

const getTemplateSQL = `SELECT ` + templateColumns + ` FROM templates WHERE tenant_id = $1 AND name = $2`

func (r *templates) Get(ctx context.Context, tenantID, name string) (*store.Template, error) {
	return r.get(ctx, r.s.pool.QueryRow(ctx, getTemplateSQL, tenantID, name), name)
}

func (r *templates) List(ctx context.Context, tenantID string, allTenants bool) ([]*store.Template, error) {
	q, args := `SELECT `+templateColumns+` FROM templates WHERE tenant_id = $1 ORDER BY name`, []any{tenantID}
	if allTenants {
		q, args = `SELECT `+templateColumns+` FROM templates ORDER BY tenant_id, name`, nil
	}
	return collect(ctx, r.s, "list templates", scanTemplate, q, args...)
}

// Update locks the row, calls fn and writes in one transaction.
func (r *templates) Update(ctx context.Context, tenantID, name string, fn func(t *store.Template) error) (*store.Template, error) {
	var out *store.Template
	err := r.s.tx(ctx, func(tx pgx.Tx) error {
		t, err := r.get(ctx, tx.QueryRow(ctx, getTemplateSQL+` FOR UPDATE`, tenantID, name), name)
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
		t.UpdatedAt = now()
		body, err := store.EncodeTemplateBody(t)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE templates SET version = $1, body = $2, updated_at = $3 WHERE tenant_id = $4 AND name = $5`,
			t.Version, body, t.UpdatedAt, tenantID, name)
		out = t
		return classify(ctx, err, "update template %s", name)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *templates) Delete(ctx context.Context, tenantID, name string) error {
	tag, err := r.s.pool.Exec(ctx, `DELETE FROM templates WHERE tenant_id = $1 AND name = $2`, tenantID, name)
	if err != nil {
		return classify(ctx, err, "delete template %s", name)
	}
	if tag.RowsAffected() == 0 {
		return errs.New(errs.NotFound, "template %s not found", name)
	}
	return nil
}

// quotas implements store.Quotas on the quotas table.
type quotas struct{ s *Store }

const quotaColumns = `owner, max_sandboxes, max_ttl_ns, max_exec_timeout_ns, updated_at`

func scanQuota(row pgx.Row) (*store.Quota, error) {
	var q store.Quota
	var ttl, exec int64
	if err := row.Scan(&q.Owner, &q.MaxSandboxes, &ttl, &exec, &q.UpdatedAt); err != nil {
		return nil, err
	}
	q.MaxTTL, q.MaxExecTimeout = time.Duration(ttl), time.Duration(exec)
	q.UpdatedAt = q.UpdatedAt.UTC()
	return &q, nil
}

func (r *quotas) Put(ctx context.Context, q *store.Quota) error {
	if q == nil || q.Owner == "" {
		return errs.New(errs.Invalid, "quota owner is required")
	}
	if q.MaxSandboxes < 0 || q.MaxTTL < 0 || q.MaxExecTimeout < 0 {
		return errs.New(errs.Invalid, "quota limits must not be negative")
	}
	q.UpdatedAt = now()
	_, err := r.s.pool.Exec(ctx, `INSERT INTO quotas (`+quotaColumns+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner) DO UPDATE SET max_sandboxes = excluded.max_sandboxes,
		max_ttl_ns = excluded.max_ttl_ns, max_exec_timeout_ns = excluded.max_exec_timeout_ns,
		updated_at = excluded.updated_at`,
		q.Owner, q.MaxSandboxes, int64(q.MaxTTL), int64(q.MaxExecTimeout), q.UpdatedAt)
	return classify(ctx, err, "put quota for %s", q.Owner)
}

func (r *quotas) Get(ctx context.Context, owner string) (*store.Quota, error) {
	q, err := scanQuota(r.s.pool.QueryRow(ctx, `SELECT `+quotaColumns+` FROM quotas WHERE owner = $1`, owner))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "no quota for owner %s", owner)
	}
	if err != nil {
		return nil, classify(ctx, err, "get quota for %s", owner)
	}
	return q, nil
}

func (r *quotas) List(ctx context.Context) ([]*store.Quota, error) {
	return collect(ctx, r.s, "list quotas", scanQuota, `SELECT `+quotaColumns+` FROM quotas ORDER BY owner`)
}

func (r *quotas) Delete(ctx context.Context, owner string) error {
	tag, err := r.s.pool.Exec(ctx, `DELETE FROM quotas WHERE owner = $1`, owner)
	if err != nil {
		return classify(ctx, err, "delete quota for %s", owner)
	}
	if tag.RowsAffected() == 0 {
		return errs.New(errs.NotFound, "no quota for owner %s", owner)
	}
	return nil
}

// collect runs a query and scans every row with scan; the result is never
// nil. A scan error already classified (a corrupt row) is returned as is.
func collect[T any](ctx context.Context, s *Store, what string, scan func(pgx.Row) (*T, error), q string, args ...any) ([]*T, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, err, "%s", what)
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			if classified(err) {
				return nil, err
			}
			return nil, classify(ctx, err, "%s", what)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, err, "%s", what)
	}
	return out, nil
}

var (
	_ store.Templates = (*templates)(nil)
	_ store.Quotas    = (*quotas)(nil)
)
