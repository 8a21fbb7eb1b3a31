package api

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// fakeTemplatesQuotas keeps templates and quotas in maps with the store's
// semantics: Conflict on a duplicate, NotFound on an unknown name or owner,
// versions counting updates, Invalid for an empty image or negative limits.
type fakeTemplatesQuotas struct {
	mu        sync.Mutex
	templates map[string]*sandbox.Template // by name (one tenant)
	quotas    map[string]*sandbox.Quota
}

func (f *fakeService) CreateTemplate(_ context.Context, t *sandbox.Template) error {
	if t.Name == "" || t.Image == "" {
		return errs.New(errs.Invalid, "template name and image are required")
	}
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	if f.tq.templates == nil {
		f.tq.templates = map[string]*sandbox.Template{}
	}
	k := t.Name
	if f.tq.templates[k] != nil {
		return errs.New(errs.Conflict, "template %s already exists", t.Name)
	}
	t.Version, t.CreatedAt, t.UpdatedAt = 1, time.Now(), time.Now()
	c := *t
	f.tq.templates[k] = &c
	return nil
}

func (f *fakeService) GetTemplate(_ context.Context, name string) (*sandbox.Template, error) {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	t := f.tq.templates[name]
	if t == nil {
		return nil, errs.New(errs.NotFound, "template %s not found", name)
	}
	c := *t
	return &c, nil
}

func (f *fakeService) ListTemplates(_ context.Context) ([]*sandbox.Template, error) {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	out := []*sandbox.Template{}
	for _, t := range f.tq.templates {
		c := *t
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeService) ReplaceTemplate(_ context.Context, name string, repl *sandbox.Template) (*sandbox.Template, error) {
	if repl.Image == "" {
		return nil, errs.New(errs.Invalid, "template image is required")
	}
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	t := f.tq.templates[name]
	if t == nil {
		return nil, errs.New(errs.NotFound, "template %s not found", name)
	}
	c := *repl
	c.Name, c.CreatedAt, c.Version, c.UpdatedAt = name, t.CreatedAt, t.Version+1, time.Now()
	f.tq.templates[name] = &c
	out := c
	return &out, nil
}

func (f *fakeService) DeleteTemplate(_ context.Context, name string) error {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	if f.tq.templates[name] == nil {
		return errs.New(errs.NotFound, "template %s not found", name)
	}
	delete(f.tq.templates, name)
	return nil
}

func (f *fakeService) ListQuotas(context.Context) ([]*sandbox.Quota, error) {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	out := []*sandbox.Quota{}
	for _, q := range f.tq.quotas {
		c := *q
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	return out, nil
}

func (f *fakeService) GetQuota(_ context.Context, owner string) (*sandbox.Quota, error) {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	q := f.tq.quotas[owner]
	if q == nil {
		return nil, errs.New(errs.NotFound, "no quota for owner %s", owner)
	}
	c := *q
	return &c, nil
}

func (f *fakeService) PutQuota(_ context.Context, q *sandbox.Quota) error {
	if q.MaxSandboxes < 0 || q.MaxTTL < 0 || q.MaxExecTimeout < 0 {
		return errs.New(errs.Invalid, "quota limits must not be negative")
	}
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	if f.tq.quotas == nil {
		f.tq.quotas = map[string]*sandbox.Quota{}
	}
	q.UpdatedAt = time.Now()
	c := *q
	f.tq.quotas[q.Owner] = &c
	return nil
}

func (f *fakeService) DeleteQuota(_ context.Context, owner string) error {
	f.tq.mu.Lock()
	defer f.tq.mu.Unlock()
	if f.tq.quotas[owner] == nil {
		return errs.New(errs.NotFound, "no quota for owner %s", owner)
	}
	delete(f.tq.quotas, owner)
	return nil
}

func (f *fakeService) SummarizeQuotas(ctx context.Context) (sandbox.QuotaSummary, error) {
	qs, _ := f.ListQuotas(ctx)
	out := sandbox.QuotaSummary{Total: len(qs)}
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

func (f *fakeService) OwnerUsage(ctx context.Context, owner string) (sandbox.QuotaUsage, error) {
	f.mu.Lock()
	n := 0
	for _, sb := range f.sandboxes {
		if sb.OwnerID == owner {
			n++
		}
	}
	f.mu.Unlock()
	u := sandbox.QuotaUsage{Owner: owner, ActiveSandboxes: n}
	if q, err := f.GetQuota(ctx, owner); err == nil {
		u.HasQuota, u.MaxSandboxes, u.MaxTTL, u.MaxExecTimeout = true, q.MaxSandboxes, q.MaxTTL, q.MaxExecTimeout
	}
	return u, nil
}
