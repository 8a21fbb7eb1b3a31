package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// InstrumentStore returns st with every sandbox-record call and Ping timed
// into stacyvm_store_operation_duration_seconds. Methods it does not know
// (aggregates added later) pass through untimed via the embedded interface.
func (m *Metrics) InstrumentStore(st store.Store) store.Store {
	return &timedStore{Store: st, m: m, sb: &timedSandboxes{Sandboxes: st.Sandboxes(), m: m}}
}

type timedStore struct {
	store.Store
	m  *Metrics
	sb *timedSandboxes
}

func (m *Metrics) observeStore(op string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = strings.ToLower(errs.ClassOf(err).Code())
	}
	m.storeDur.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}

func (t *timedStore) Sandboxes() store.Sandboxes { return t.sb }

func (t *timedStore) Ping(ctx context.Context) (err error) {
	start := time.Now()
	defer func() { t.m.observeStore("ping", start, err) }()
	return t.Store.Ping(ctx)
}

type timedSandboxes struct {
	store.Sandboxes
	m *Metrics
}

func (t *timedSandboxes) Create(ctx context.Context, sb *store.Sandbox) (err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_create", start, err) }()
	return t.Sandboxes.Create(ctx, sb)
}

func (t *timedSandboxes) Get(ctx context.Context, id string) (_ *store.Sandbox, err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_get", start, err) }()
	return t.Sandboxes.Get(ctx, id)
}

func (t *timedSandboxes) Update(ctx context.Context, id string, fn func(sb *store.Sandbox) error) (_ *store.Sandbox, err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_update", start, err) }()
	return t.Sandboxes.Update(ctx, id, fn)
}

func (t *timedSandboxes) List(ctx context.Context, f store.SandboxFilter) (_ []*store.Sandbox, err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_list", start, err) }()
	return t.Sandboxes.List(ctx, f)
}

func (t *timedSandboxes) Count(ctx context.Context, f store.SandboxFilter) (_ int, err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_count", start, err) }()
	return t.Sandboxes.Count(ctx, f)
}

func (t *timedSandboxes) Purge(ctx context.Context, before time.Time) (_ int, err error) {
	start := time.Now()
	defer func() { t.m.observeStore("sandbox_purge", start, err) }()
	return t.Sandboxes.Purge(ctx, before)
}

var _ store.Store = (*timedStore)(nil)
