package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Quota is an owner's caps (API.md "quotas"); zero fields do not limit.
type Quota = store.Quota

// ownerLimits are the limits that apply to one owner: the owner's quota
// where it sets a field, else the server defaults. A quota may raise the
// per-owner sandbox count above the default, but never a TTL or exec
// timeout above the server-wide maximum.
type ownerLimits struct {
	MaxSandboxes   int
	MaxTTL         time.Duration
	MaxExecTimeout time.Duration
}

// quotaCacheTTL bounds how stale a cached quota can be when another process
// (a second server on the same database) changes it; this process's own
// changes invalidate the cache at once.
const quotaCacheTTL = 2 * time.Second

type quotaCache struct {
	mu sync.Mutex
	m  map[string]quotaEntry
}

type quotaEntry struct {
	q       *store.Quota // nil: the owner has no quota
	fetched time.Time
}

func (c *quotaCache) forget(owner string) {
	c.mu.Lock()
	delete(c.m, owner)
	c.mu.Unlock()
}

// quotaOf returns the owner's quota or nil, from the cache when fresh.
func (s *Service) quotaOf(ctx context.Context, owner string) (*store.Quota, error) {
	if owner == "" {
		return nil, nil
	}
	now := s.now()
	s.quotas.mu.Lock()
	e, ok := s.quotas.m[owner]
	s.quotas.mu.Unlock()
	if ok && now.Sub(e.fetched) < quotaCacheTTL {
		return e.q, nil
	}
	q, err := s.store.Quotas().Get(ctx, owner)
	if errs.Is(err, errs.NotFound) {
		q, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.quotas.mu.Lock()
	if s.quotas.m == nil || len(s.quotas.m) > 10000 {
		s.quotas.m = map[string]quotaEntry{} // bounded: start over
	}
	s.quotas.m[owner] = quotaEntry{q: q, fetched: now}
	s.quotas.mu.Unlock()
	return q, nil
}

// limitsFor returns the limits that apply to owner ("" = the defaults).
func (s *Service) limitsFor(ctx context.Context, owner string) (ownerLimits, error) {
	l := ownerLimits{MaxSandboxes: s.d.MaxPerOwner, MaxTTL: s.d.MaxTTL, MaxExecTimeout: s.d.MaxExecTimeout}
	q, err := s.quotaOf(ctx, owner)
	if err != nil || q == nil {
		return l, err
	}
	if q.MaxSandboxes > 0 {
		l.MaxSandboxes = q.MaxSandboxes
	}
	if q.MaxTTL > 0 && (l.MaxTTL == 0 || q.MaxTTL < l.MaxTTL) {
		l.MaxTTL = q.MaxTTL
	}
	if q.MaxExecTimeout > 0 && (l.MaxExecTimeout == 0 || q.MaxExecTimeout < l.MaxExecTimeout) {
		l.MaxExecTimeout = q.MaxExecTimeout
	}
	return l, nil
}

// checkOwnerTTL refuses a TTL over the owner's quota (the server-wide
// maximum is checked by normalize).
func (s *Service) checkOwnerTTL(ctx context.Context, owner string, ttl time.Duration) error {
	if owner == "" {
		return nil
	}
	l, err := s.limitsFor(ctx, owner)
	if err != nil {
		return err
	}
	if l.MaxTTL > 0 && ttl > l.MaxTTL {
		return errs.New(errs.Limit, "ttl %s exceeds owner %s's maximum of %s", ttl, owner, l.MaxTTL)
	}
	return nil
}

// ListQuotas returns every quota by owner.
func (s *Service) ListQuotas(ctx context.Context) ([]*Quota, error) {
	return s.store.Quotas().List(ctx)
}

// GetQuota returns one owner's quota; NotFound when none is set.
func (s *Service) GetQuota(ctx context.Context, owner string) (*Quota, error) {
	return s.store.Quotas().Get(ctx, owner)
}

// PutQuota creates or replaces an owner's quota. It applies to new
// sandboxes, extends and execs from now on; running sandboxes are not cut.
func (s *Service) PutQuota(ctx context.Context, q *Quota) error {
	if q.MaxSandboxes < 0 || q.MaxTTL < 0 || q.MaxExecTimeout < 0 {
		return errs.New(errs.Invalid, "quota limits must not be negative")
	}
	defer s.quotas.forget(q.Owner)
	return s.store.Quotas().Put(ctx, q)
}

// DeleteQuota removes an owner's quota (the defaults apply again).
func (s *Service) DeleteQuota(ctx context.Context, owner string) error {
	defer s.quotas.forget(owner)
	return s.store.Quotas().Delete(ctx, owner)
}

// QuotaSummary counts the quotas and which limits they set (API.md shape).
type QuotaSummary struct {
	Total, WithMaxSandboxes, WithMaxTTL, WithMaxExecTimeout int
}

// SummarizeQuotas returns the QuotaSummary.
func (s *Service) SummarizeQuotas(ctx context.Context) (QuotaSummary, error) {
	qs, err := s.store.Quotas().List(ctx)
	if err != nil {
		return QuotaSummary{}, err
	}
	out := QuotaSummary{Total: len(qs)}
	for _, q := range qs {
		if q.MaxSandboxes > 0 {
			out.WithMaxSandboxes++
		}
		if q.MaxTTL > 0 {
			out.WithMaxTTL++
		}
		if q.MaxExecTimeout > 0 {
			out.WithMaxExecTimeout++
		}
	}
	return out, nil
}

// QuotaUsage is what an owner uses against the limits that apply to it.
type QuotaUsage struct {
	Owner           string
	ActiveSandboxes int
	HasQuota        bool
	MaxSandboxes    int
	MaxTTL          time.Duration
	MaxExecTimeout  time.Duration
}

// OwnerUsage reports an owner's live sandboxes and effective limits. An
// owner without a quota is not an error: the defaults apply.
func (s *Service) OwnerUsage(ctx context.Context, owner string) (QuotaUsage, error) {
	if owner == "" {
		return QuotaUsage{}, errs.New(errs.Invalid, "owner is required")
	}
	n, err := s.store.Sandboxes().Count(ctx, store.SandboxFilter{States: visibleStates(), OwnerID: owner})
	if err != nil {
		return QuotaUsage{}, err
	}
	q, err := s.quotaOf(ctx, owner)
	if err != nil {
		return QuotaUsage{}, err
	}
	l, err := s.limitsFor(ctx, owner)
	if err != nil {
		return QuotaUsage{}, err
	}
	return QuotaUsage{Owner: owner, ActiveSandboxes: n, HasQuota: q != nil,
		MaxSandboxes: l.MaxSandboxes, MaxTTL: l.MaxTTL, MaxExecTimeout: l.MaxExecTimeout}, nil
}

// capOwnerExecTimeout applies the owner's quota to an exec: an asked
// timeout over it is refused; the default timeout is lowered to it.
func (s *Service) capOwnerExecTimeout(ctx context.Context, owner string, asked time.Duration, areq *agent.ExecRequest) error {
	if owner == "" {
		return nil
	}
	l, err := s.limitsFor(ctx, owner)
	if err != nil || l.MaxExecTimeout <= 0 {
		return err
	}
	if asked > l.MaxExecTimeout {
		return errs.New(errs.Limit, "timeout %s exceeds owner %s's maximum of %s", asked, owner, l.MaxExecTimeout)
	}
	if ms := l.MaxExecTimeout.Milliseconds(); areq.TimeoutMS <= 0 || areq.TimeoutMS > ms {
		areq.TimeoutMS = ms
	}
	return nil
}
