package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// sandboxes implements store.Sandboxes on the sandboxes table.
type sandboxes struct {
	s *Store
	// get is prepared once: Get runs on every exec and file call, and
	// re-parsing the SQL each time was most of its cost (pprof).
	get *sql.Stmt
}

const getSandboxSQL = `SELECT ` + sandboxColumns + ` FROM sandboxes WHERE id = ?`

const sandboxColumns = `id, state, provider, image, memory_mb, vcpus, network, owner_id, tenant_id,
	metadata, env, handle, error, created_at, updated_at, expires_at, destroyed_at`

// Create inserts sb. A zero CreatedAt is set to now and a zero UpdatedAt to
// CreatedAt, on sb itself, so the caller sees what was stored.
func (r *sandboxes) Create(ctx context.Context, sb *store.Sandbox) error {
	if sb == nil || sb.ID == "" {
		return errs.New(errs.Invalid, "sandbox id is required")
	}
	if sb.CreatedAt.IsZero() {
		sb.CreatedAt = time.Now().UTC()
	}
	if sb.UpdatedAt.IsZero() {
		sb.UpdatedAt = sb.CreatedAt
	}
	args, err := rowArgs(sb)
	if err != nil {
		return err
	}
	err = r.s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sandboxes (`+sandboxColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, append([]any{sb.ID}, args...)...)
		return classify(ctx, err, "create sandbox %s", sb.ID)
	})
	if errs.Is(err, errs.Conflict) {
		return errs.Wrap(errs.Conflict, errors.Unwrap(err), "sandbox %s already exists", sb.ID)
	}
	return err
}

// Get returns the record; unknown id is NotFound.
func (r *sandboxes) Get(ctx context.Context, id string) (*store.Sandbox, error) {
	return scanGot(ctx, r.get.QueryRowContext(ctx, id), id)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getSandbox(ctx context.Context, q queryRower, id string) (*store.Sandbox, error) {
	return scanGot(ctx, q.QueryRowContext(ctx, getSandboxSQL, id), id)
}

func scanGot(ctx context.Context, row *sql.Row, id string) (*store.Sandbox, error) {
	sb, err := scanSandbox(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.New(errs.NotFound, "sandbox %s not found", id)
	}
	if err != nil {
		return nil, classify(ctx, err, "get sandbox %s", id)
	}
	return sb, nil
}

// Update reads, calls fn and writes in one immediate transaction, so
// concurrent updates of the same record serialize and none is lost.
func (r *sandboxes) Update(ctx context.Context, id string, fn func(sb *store.Sandbox) error) (*store.Sandbox, error) {
	var out *store.Sandbox
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		sb, err := getSandbox(ctx, tx, id)
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
		sb.UpdatedAt = time.Now().UTC()
		if !sb.UpdatedAt.After(prev) { // a clock step back must not reorder history
			sb.UpdatedAt = prev.Add(time.Nanosecond)
		}
		args, err := rowArgs(sb)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sandboxes SET state = ?, provider = ?, image = ?,
			memory_mb = ?, vcpus = ?, network = ?, owner_id = ?, tenant_id = ?, metadata = ?, env = ?,
			handle = ?, error = ?, created_at = ?, updated_at = ?, expires_at = ?, destroyed_at = ?
			WHERE id = ?`, append(args, id)...)
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
	where, args := filterSQL(f)
	if f.Cursor != "" {
		var created int64
		err := r.s.db.QueryRowContext(ctx, `SELECT created_at FROM sandboxes WHERE id = ?`, f.Cursor).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errs.New(errs.Invalid, "unknown cursor %q", f.Cursor)
		}
		if err != nil {
			return nil, classify(ctx, err, "list sandboxes")
		}
		where = append(where, `(created_at, id) < (?, ?)`)
		args = append(args, created, f.Cursor)
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes` + whereSQL(where) + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := r.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, err, "list sandboxes")
	}
	defer rows.Close()
	var out []*store.Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
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
	where, args := filterSQL(f)
	var n int
	if err := r.s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sandboxes`+whereSQL(where), args...).Scan(&n); err != nil {
		return 0, classify(ctx, err, "count sandboxes")
	}
	return n, nil
}

// Purge deletes records whose DestroyedAt is set and before destroyedBefore.
func (r *sandboxes) Purge(ctx context.Context, destroyedBefore time.Time) (int, error) {
	if destroyedBefore.IsZero() {
		return 0, nil
	}
	var n int64
	err := r.s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE destroyed_at < ?`, clampNanos(destroyedBefore))
		if err != nil {
			return classify(ctx, err, "purge sandboxes")
		}
		n, err = res.RowsAffected()
		return classify(ctx, err, "purge sandboxes")
	})
	return int(n), err
}

// filterSQL turns f (minus Limit and Cursor) into AND-ed conditions.
func filterSQL(f store.SandboxFilter) ([]string, []any) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, `state IN (?`+strings.Repeat(`, ?`, len(f.States)-1)+`)`)
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	for _, c := range [...]struct{ col, val string }{
		{"owner_id", f.OwnerID}, {"tenant_id", f.TenantID}, {"provider", f.Provider},
	} {
		if c.val != "" {
			where = append(where, c.col+` = ?`)
			args = append(args, c.val)
		}
	}
	// json_each compares keys as data, so a key with quotes or dots needs no
	// JSON-path escaping.
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		where = append(where, `EXISTS (SELECT 1 FROM json_each(sandboxes.metadata) AS m WHERE m.key = ? AND m.value = ?)`)
		args = append(args, k, f.Labels[k])
	}
	if !f.ExpiredBefore.IsZero() {
		where = append(where, `expires_at < ?`) // NULL (never expires) never matches
		args = append(args, clampNanos(f.ExpiredBefore))
	}
	return where, args
}

func whereSQL(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(where, ` AND `)
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
	var handle any // nil binds NULL; an empty non-nil slice stays an empty blob
	if sb.Handle != nil {
		handle = sb.Handle
	}
	times := make([]any, 0, 4)
	for _, t := range []time.Time{sb.CreatedAt, sb.UpdatedAt, sb.ExpiresAt, sb.DestroyedAt} {
		n, err := toNanos(t)
		if err != nil {
			return nil, err
		}
		times = append(times, n)
	}
	return append([]any{sb.State, sb.Provider, sb.Image, sb.MemoryMB, sb.VCPUs, sb.Network,
		sb.OwnerID, sb.TenantID, meta, env, handle, sb.Error}, times...), nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSandbox(sc scanner) (*store.Sandbox, error) {
	var (
		sb                 store.Sandbox
		meta, env          string
		created, updated   sql.NullInt64
		expires, destroyed sql.NullInt64
	)
	if err := sc.Scan(&sb.ID, &sb.State, &sb.Provider, &sb.Image, &sb.MemoryMB, &sb.VCPUs, &sb.Network,
		&sb.OwnerID, &sb.TenantID, &meta, &env, &sb.Handle, &sb.Error,
		&created, &updated, &expires, &destroyed); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(meta), &sb.Metadata); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox %s: corrupt metadata", sb.ID)
	}
	if err := json.Unmarshal([]byte(env), &sb.Env); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox %s: corrupt env", sb.ID)
	}
	// Never hand out nil maps: an Update fn may write to them directly.
	if sb.Metadata == nil {
		sb.Metadata = map[string]string{}
	}
	if sb.Env == nil {
		sb.Env = map[string]string{}
	}
	sb.CreatedAt, sb.UpdatedAt = fromNanos(created), fromNanos(updated)
	sb.ExpiresAt, sb.DestroyedAt = fromNanos(expires), fromNanos(destroyed)
	return &sb, nil
}

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

// Times are stored as unix nanoseconds (UTC), NULL for the zero time, which
// keeps them exact and sortable as integers; the range is years 1678-2262.
func toNanos(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return sql.NullInt64{}, errs.New(errs.Invalid, "time %s out of range (years 1678-2262)", t.Format(time.RFC3339))
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}, nil
}

// clampNanos is toNanos for filter bounds, where an out-of-range bound
// means "everything" or "nothing" rather than an error.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

var _ store.Sandboxes = (*sandboxes)(nil)
