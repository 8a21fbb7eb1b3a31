package sandbox

import (
	"context"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Template is a named, versioned sandbox recipe (API.md "Templates").
type Template = store.Template

// TemplateSecret names a secret a template wants injected.
type TemplateSecret = store.TemplateSecret

// Metadata keys a sandbox spawned from a template carries.
const (
	MetaTemplate        = reservedPrefix + "template"
	MetaTemplateVersion = reservedPrefix + "template_version"
)

var templateNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Limits on a template's setup script.
const (
	maxSetupSteps   = 32
	maxSetupCommand = 16 << 10
	setupOutputTail = 2 << 10 // bytes of a failed step's output in the error
)

// validateTemplate checks t as completely as a spawn would, so a bad
// template fails at create/update (400), never at spawn time.
func (s *Service) validateTemplate(t *Template) error {
	if !templateNameRE.MatchString(t.Name) {
		return errs.New(errs.Invalid, "template name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if t.Image == "" {
		return errs.New(errs.Invalid, "template image is required")
	}
	if len(t.Description) > 1024 {
		return errs.New(errs.Invalid, "template description is over 1024 characters")
	}
	if t.MemoryMB < 0 || t.CPUCores < 0 || t.TTLSeconds < 0 || t.PoolSize < 0 {
		return errs.New(errs.Invalid, "template memory_mb, cpu_cores, ttl_seconds and pool_size must not be negative")
	}
	// Not built yet: refused loudly rather than accepted and ignored.
	if len(t.AllowedHosts) > 0 {
		return errs.New(errs.Invalid, "template allowed_hosts is not supported yet (no egress filtering); use network \"none\" or \"bridge\"")
	}
	if len(t.Secrets) > 0 {
		return errs.New(errs.Invalid, "template secrets are not supported yet (no secret store); pass values through env")
	}
	if t.PoolSize > 0 {
		return errs.New(errs.Invalid, "template pool_size is not supported yet; use warm_pool.images for per-image warm pools")
	}
	if len(t.Setup) > maxSetupSteps {
		return errs.New(errs.Invalid, "template setup has %d steps, at most %d", len(t.Setup), maxSetupSteps)
	}
	for i, c := range t.Setup {
		if strings.TrimSpace(c) == "" || len(c) > maxSetupCommand || strings.IndexByte(c, 0) >= 0 {
			return errs.New(errs.Invalid, "template setup step %d must be a non-empty command of at most %d bytes", i+1, maxSetupCommand)
		}
	}
	for _, v := range t.Env {
		if strings.IndexByte(v, 0) >= 0 {
			return errs.New(errs.Invalid, "template env values must not contain NUL bytes")
		}
	}
	_, err := s.normalize(CreateRequest{
		Image: t.Image, Provider: t.Provider, MemoryMB: t.MemoryMB, VCPUs: t.CPUCores,
		TTL: time.Duration(t.TTLSeconds) * time.Second, Network: t.Network, Env: t.Env,
	})
	return err
}

// templateTenant is the tenant whose templates the caller of ctx works
// with: its own (admins without a tenant, and the server itself, the
// default tenant). Templates of other tenants are therefore NotFound.
func templateTenant(ctx context.Context) (string, error) {
	p := auth.FromContext(ctx)
	switch {
	case p == nil:
		return auth.DefaultTenant, nil
	case p.Tenant != "":
		return p.Tenant, nil
	case p.IsAdmin():
		return auth.DefaultTenant, nil
	}
	return "", errs.New(errs.Forbidden, "this principal belongs to no tenant")
}

// CreateTemplate stores a new template (version 1) in the caller's tenant.
func (s *Service) CreateTemplate(ctx context.Context, t *Template) error {
	tenant, err := templateTenant(ctx)
	if err != nil {
		return err
	}
	t.TenantID = tenant
	if err := s.validateTemplate(t); err != nil {
		return err
	}
	return s.store.Templates().Create(ctx, t)
}

// GetTemplate returns one of the caller's tenant's templates.
func (s *Service) GetTemplate(ctx context.Context, name string) (*Template, error) {
	tenant, err := templateTenant(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Templates().Get(ctx, tenant, name)
}

// ListTemplates returns the caller's tenant's templates by name.
func (s *Service) ListTemplates(ctx context.Context) ([]*Template, error) {
	tenant, err := templateTenant(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Templates().List(ctx, tenant, false)
}

// ReplaceTemplate replaces a template's recipe with repl's (name and tenant
// stay), raising its version.
func (s *Service) ReplaceTemplate(ctx context.Context, name string, repl *Template) (*Template, error) {
	tenant, err := templateTenant(ctx)
	if err != nil {
		return nil, err
	}
	repl.TenantID, repl.Name = tenant, name
	if err := s.validateTemplate(repl); err != nil {
		return nil, err
	}
	return s.store.Templates().Update(ctx, tenant, name, func(t *store.Template) error {
		created, version := t.CreatedAt, t.Version
		*t = *repl
		t.TenantID, t.Name, t.CreatedAt, t.Version = tenant, name, created, version
		return nil
	})
}

// DeleteTemplate removes a template; sandboxes spawned from it live on.
func (s *Service) DeleteTemplate(ctx context.Context, name string) error {
	tenant, err := templateTenant(ctx)
	if err != nil {
		return err
	}
	return s.store.Templates().Delete(ctx, tenant, name)
}

// createFromTemplate spawns from req.Template: the template gives every
// field the request leaves unset (env is merged, the request's winning),
// then the template's setup steps run in order; a failing step destroys
// the sandbox and fails the spawn with the step's exit code and output.
func (s *Service) createFromTemplate(ctx context.Context, req CreateRequest) (*Sandbox, error) {
	t, err := s.store.Templates().Get(ctx, req.TenantID, req.Template)
	if err != nil {
		return nil, err
	}
	if req.Image != "" && req.Image != t.Image {
		return nil, errs.New(errs.Invalid, "image %q conflicts with template %s's image %q; leave image out", printable(req.Image), t.Name, t.Image)
	}
	cr := CreateRequest{
		Image: t.Image, Provider: first(req.Provider, t.Provider), MemoryMB: req.MemoryMB,
		VCPUs: req.VCPUs, TTL: req.TTL, Network: first(req.Network, t.Network),
		OwnerID: req.OwnerID, TenantID: req.TenantID, Metadata: req.Metadata,
	}
	if cr.MemoryMB == 0 {
		cr.MemoryMB = t.MemoryMB
	}
	if cr.VCPUs == 0 {
		cr.VCPUs = t.CPUCores
	}
	if cr.TTL == 0 {
		cr.TTL = time.Duration(t.TTLSeconds) * time.Second
	}
	if len(t.Env)+len(req.Env) > 0 {
		cr.Env = maps.Clone(t.Env)
		if cr.Env == nil {
			cr.Env = map[string]string{}
		}
		maps.Copy(cr.Env, req.Env)
	}
	n, err := s.normalize(cr)
	if err != nil {
		return nil, err
	}
	if err := s.checkOwnerTTL(ctx, n.req.OwnerID, n.req.TTL); err != nil {
		return nil, err
	}
	md := maps.Clone(n.req.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[MetaTemplate] = t.Name
	md[MetaTemplateVersion] = strconv.Itoa(t.Version)
	n.req.Metadata = md
	sb, err := s.provision(ctx, n, StateRunning)
	if err != nil {
		return nil, err
	}
	for i, step := range t.Setup {
		var out tailBuffer
		res, err := s.Exec(ctx, sb.ID, ExecRequest{Command: step}, &out, &out)
		if err == nil && res.ExitCode == 0 {
			continue
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if derr := s.Destroy(dctx, sb.ID); derr != nil {
			s.log.Warn("destroying a sandbox whose template setup failed", "sandbox_id", sb.ID, "err", derr)
		}
		cancel()
		if err != nil {
			return nil, errs.Wrap(errs.ClassOf(err), err, "template %s setup step %d failed: %s", t.Name, i+1, errs.Message(err))
		}
		return nil, errs.New(errs.Invalid, "template %s setup step %d exited with code %d: %s", t.Name, i+1, res.ExitCode, out.String())
	}
	return s.Get(ctx, sb.ID)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tailBuffer keeps the last setupOutputTail bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > setupOutputTail {
		t.b = append(t.b[:0], t.b[len(t.b)-setupOutputTail:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }
