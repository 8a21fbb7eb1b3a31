package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// sandboxes implements store.Sandboxes on the sandboxes table.
type sandboxes struct{ s *Store }

const sandboxColumns = `id, state, provider, image, memory_mb, vcpus, network, owner_id, tenant_id,
	metadata, env, handle, error, created_at, updated_at, expires_at, destroyed_at`

const getSandboxSQL = `SELECT ` + sandboxColumns + ` FROM sandboxes WHERE id = $1`

// Create inserts sb. A zero CreatedAt is set to now and a zero UpdatedAt to
// CreatedAt, on sb itself, so the caller sees what was stored.
func (r *sandboxes) Create(ctx context.Context, sb *store.Sandbox) error {
	if sb == nil || sb.ID == "" {
		return errs.New(errs.Invalid, "sandbox id is required")
	}
	if sb.CreatedAt.IsZero() {
		sb.CreatedAt = now()
	}
	if sb.UpdatedAt.IsZero() {
		sb.UpdatedAt = sb.CreatedAt
	}
	args, err := rowArgs(sb)
	if err != nil {
		return err
	}
	_, err = r.s.pool.Exec(ctx, `INSERT INTO sandboxes (`+sandboxColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		append([]any{sb.ID}, args...)...)
	if err = classify(ctx, err, "create sandbox %s", sb.ID); errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "sandbox %s already exists", sb.ID)
	}
	return err
}

// Get returns the record; unknown id is NotFound.
func (r *sandboxes) Get(ctx context.Context, id string) (*store.Sandbox, error) {
	return scanGot(ctx, r.s.pool.QueryRow(ctx, getSandboxSQL, id), id)
}

func scanGot(ctx context.Context, row pgx.Row, id string) (*store.Sandbox, error) {
	sb, err := scanSandbox(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "sandbox %s not found", id)
	}
	if err != nil && !classified(err) {
		return nil, classify(ctx, err, "get sandbox %s", id)
	}
	return sb, err
}

// Update locks the row (SELECT ... FOR UPDATE), calls fn and writes, all in
// one transaction: concurrent updates of one record, from this process or
// another control plane, serialize and none is lost.
func (r *sandboxes) Update(ctx context.Context, id string, fn func(sb *store.Sandbox) error) (*store.Sandbox, error) {
	var out *store.Sandbox
	err := r.s.tx(ctx, func(tx pgx.Tx) error {
		sb, err := scanGot(ctx, tx.QueryRow(ctx, getSandboxSQL+` FOR UPDATE`, id), id)
		if err != nil {
			return err
		}
		prev := sb.UpdatedAt
		if err := fn(sb); err != nil {
			return err
		}
		if sb.ID != id {
			return errs.New(errs.Invalid, "sandbox id cannot change (%s to %s)", id, sb.ID)
		}
		sb.UpdatedAt = now()
		if !sb.UpdatedAt.After(prev) { // a clock step back must not reorder history
			sb.UpdatedAt = prev.Add(time.Microsecond)
		}
		args, err := rowArgs(sb)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sandboxes SET state = $1, provider = $2, image = $3,
			memory_mb = $4, vcpus = $5, network = $6, owner_id = $7, tenant_id = $8, metadata = $9, env = $10,
			handle = $11, error = $12, created_at = $13, updated_at = $14, expires_at = $15, destroyed_at = $16
			WHERE id = $17`, append(args, id)...)
		if err != nil {
			return classify(ctx, err, "update sandbox %s", id)
		}
		out = sb
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// List returns matching records newest first. A Cursor that names no record
// is Invalid (it was purged, or never came from List).
func (r *sandboxes) List(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, error) {
	if f.Limit < 0 {
		return nil, errs.New(errs.Invalid, "negative limit %d", f.Limit)
	}
	q, err := filterSQL(f)
	if err != nil {
		return nil, err
	}
	if f.Cursor != "" {
		var created time.Time
		err := r.s.pool.QueryRow(ctx, `SELECT created_at FROM sandboxes WHERE id = $1`, f.Cursor).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, errs.New(errs.Invalid, "unknown cursor %q", f.Cursor)
		}
		if err != nil {
			return nil, classify(ctx, err, "list sandboxes")
		}
		q.add(`(created_at, id) < (`+q.arg(created)+`, `+q.arg(f.Cursor)+`)`, nil)
	}
	sqlText := `SELECT ` + sandboxColumns + ` FROM sandboxes` + q.where() + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		sqlText += ` LIMIT ` + q.arg(f.Limit)
	}
	rows, err := r.s.pool.Query(ctx, sqlText, q.args...)
	if err != nil {
		return nil, classify(ctx, err, "list sandboxes")
	}
	defer rows.Close()
	var out []*store.Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			if classified(err) {
				return nil, err
			}
			return nil, classify(ctx, err, "list sandboxes")
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, err, "list sandboxes")
	}
	return out, nil
}

// Count returns how many records match f, ignoring Limit and Cursor.
func (r *sandboxes) Count(ctx context.Context, f store.SandboxFilter) (int, error) {
	q, err := filterSQL(f)
	if err != nil {
		return 0, err
	}
	var n int
	if err := r.s.pool.QueryRow(ctx, `SELECT count(*) FROM sandboxes`+q.where(), q.args...).Scan(&n); err != nil {
		return 0, classify(ctx, err, "count sandboxes")
	}
	return n, nil
}

// Purge deletes records whose DestroyedAt is set and before destroyedBefore.
func (r *sandboxes) Purge(ctx context.Context, destroyedBefore time.Time) (int, error) {
	if destroyedBefore.IsZero() {
		return 0, nil
	}
	tag, err := r.s.pool.Exec(ctx, `DELETE FROM sandboxes WHERE destroyed_at < $1`, clamp(destroyedBefore))
	if err != nil {
		return 0, classify(ctx, err, "purge sandboxes")
	}
	return int(tag.RowsAffected()), nil
}

// query collects AND-ed conditions and their numbered parameters.
type query struct {
	conds []string
	args  []any
}

// arg adds a parameter and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// add appends a condition; a non-nil v is its single parameter, spelled
// $? in cond.
func (q *query) add(cond string, v any) {
	if v != nil {
		cond = strings.Replace(cond, "$?", q.arg(v), 1)
	}
	q.conds = append(q.conds, cond)
}

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(q.conds, ` AND `)
}

// filterSQL turns f (minus Limit and Cursor) into conditions.
func filterSQL(f store.SandboxFilter) (*query, error) {
	q := &query{}
	if len(f.States) > 0 {
		q.add(`state = ANY($?)`, f.States)
	}
	for _, c := range [...]struct{ col, val string }{
		{"owner_id", f.OwnerID}, {"tenant_id", f.TenantID}, {"provider", f.Provider},
	} {
		if c.val != "" {
			q.add(c.col+` = $?`, c.val)
		}
	}
	if len(f.Labels) > 0 {
		// One containment test for all labels: keys are data, not paths,
		// so quotes or dots in a key need no escaping; the GIN index on
		// metadata serves it.
		b, err := json.Marshal(f.Labels)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "encode label filter")
		}
		q.add(`metadata @> $?::jsonb`, string(b))
	}
	if !f.ExpiredBefore.IsZero() {
		q.add(`expires_at < $?`, clamp(f.ExpiredBefore)) // NULL (never expires) never matches
	}
	return q, nil
}

// rowArgs returns every column but id, in sandboxColumns order.
func rowArgs(sb *store.Sandbox) ([]any, error) {
	meta, err := encodeMap(sb.Metadata)
	if err != nil {
		return nil, err
	}
	env, err := encodeMap(sb.Env)
	if err != nil {
		return nil, err
	}
	var handle any // nil binds NULL; an empty non-nil slice stays an empty bytea
	if sb.Handle != nil {
		handle = sb.Handle
	}
	times := make([]any, 0, 4)
	for _, t := range []time.Time{sb.CreatedAt, sb.UpdatedAt, sb.ExpiresAt, sb.DestroyedAt} {
		v, err := timeArg(t)
		if err != nil {
			return nil, err
		}
		times = append(times, v)
	}
	return append([]any{sb.State, sb.Provider, sb.Image, sb.MemoryMB, sb.VCPUs, sb.Network,
		sb.OwnerID, sb.TenantID, meta, env, handle, sb.Error}, times...), nil
}

func scanSandbox(row pgx.Row) (*store.Sandbox, error) {
	var (
		sb                 store.Sandbox
		meta, env          []byte
		expires, destroyed *time.Time
	)
	if err := row.Scan(&sb.ID, &sb.State, &sb.Provider, &sb.Image, &sb.MemoryMB, &sb.VCPUs, &sb.Network,
		&sb.OwnerID, &sb.TenantID, &meta, &env, &sb.Handle, &sb.Error,
		&sb.CreatedAt, &sb.UpdatedAt, &expires, &destroyed); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(meta, &sb.Metadata); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox %s: corrupt metadata", sb.ID)
	}
	if err := json.Unmarshal(env, &sb.Env); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox %s: corrupt env", sb.ID)
	}
	// Never hand out nil maps: an Update fn may write to them directly.
	if sb.Metadata == nil {
		sb.Metadata = map[string]string{}
	}
	if sb.Env == nil {
		sb.Env = map[string]string{}
	}
	sb.CreatedAt, sb.UpdatedAt = sb.CreatedAt.UTC(), sb.UpdatedAt.UTC()
	sb.ExpiresAt, sb.DestroyedAt = fromNullable(expires), fromNullable(destroyed)
	return &sb, nil
}

// encodeMap returns m as a JSON object (text; the statement casts it to
// jsonb), "{}" when empty.
func encodeMap(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "encode map")
	}
	return string(b), nil
}

// Times are timestamptz: microseconds, years 1-9999 here (Postgres keeps
// more, Go's time.Time formats no more). The zero time is NULL.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC) // just after the zero time
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// now is the current time at the precision the database keeps, so a
// record the store fills in reads back equal.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// timeArg binds t: nil (NULL) for the zero time, Invalid outside the range.
func timeArg(t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, errs.New(errs.Invalid, "time %s out of range (years 1-9999)", t.Format(time.RFC3339))
	}
	return t, nil
}

// clamp is timeArg for filter bounds, where an out-of-range bound means
// "everything" or "nothing" rather than an error.
func clamp(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t
}

func fromNullable(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

var _ store.Sandboxes = (*sandboxes)(nil)
