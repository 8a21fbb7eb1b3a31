package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Audited is the Service with an operation audit: spawn, destroy, exec (the
// command line, never its output or environment) and file reads, writes,
// moves, chmods and deletes (the path, never the contents) are recorded with
// the caller, its tenant, the request id and the result. Every other method
// is the Service's own. Without a governance store it records nothing.
type Audited struct {
	*Service
}

// NewAudited wraps s.
func NewAudited(s *Service) *Audited { return &Audited{Service: s} }

// record appends one op event; a failing audit write is logged, not
// returned, so an audit outage does not stop sandboxes.
func (a *Audited) record(ctx context.Context, action, id, tenant string, detail map[string]any, opErr error) {
	if a.gov == nil {
		return
	}
	p := auth.FromContext(ctx)
	if tenant == "" {
		tenant = a.tenantOf(ctx, id, p)
	}
	e := &store.AuditEvent{
		At: a.now().UTC(), Kind: store.AuditOp, TenantID: tenant, Actor: p.Actor(),
		Action: action, Target: id, Result: resultOf(opErr),
	}
	if p != nil {
		e.RemoteAddr, e.RequestID = p.RemoteAddr, p.RequestID
	}
	if len(detail) > 0 {
		b, _ := json.Marshal(detail)
		e.Detail = string(b)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.gov.Audit().Append(wctx, e); err != nil {
		a.log.LogAttrs(ctx, slog.LevelError, "audit write failed", slog.String("action", action), slog.String("sandbox_id", id), slog.Any("err", err))
	}
}

// tenantOf is the tenant an event on sandbox id belongs to: the sandbox's
// (read from the store) when the caller could see it, else the caller's.
func (a *Audited) tenantOf(ctx context.Context, id string, p *auth.Principal) string {
	if p != nil && !p.IsAdmin() {
		return p.Tenant
	}
	if validID(id) {
		if rec, err := a.store.Sandboxes().Get(context.WithoutCancel(ctx), id); err == nil {
			return rec.TenantID
		}
	}
	if p != nil {
		return p.Tenant
	}
	return ""
}

// resultOf is "ok" or the error's wire code.
func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	return errs.ClassOf(err).Code()
}

// Create records the spawn.
func (a *Audited) Create(ctx context.Context, req CreateRequest) (*Sandbox, error) {
	sb, err := a.Service.Create(ctx, req)
	id, tenant := "", ""
	if sb != nil {
		id, tenant = sb.ID, sb.TenantID
	} else if p := auth.FromContext(ctx); p != nil {
		tenant = p.Tenant
	}
	d := map[string]any{"image": req.Image, "provider": req.Provider, "network": req.Network}
	if req.Template != "" {
		d["template"] = req.Template
	}
	if len(req.Env) > 0 { // names only: values may be secrets
		names := make([]string, 0, len(req.Env))
		for k := range req.Env {
			names = append(names, k)
		}
		d["env_names"] = names
	}
	a.record(ctx, "sandbox.spawn", id, tenant, d, err)
	return sb, err
}

// Destroy records the destroy.
func (a *Audited) Destroy(ctx context.Context, id string) error {
	tenant := a.tenantOf(ctx, id, auth.FromContext(ctx)) // before: the record is gone after
	err := a.Service.Destroy(ctx, id)
	a.record(ctx, "sandbox.destroy", id, tenant, nil, err)
	return err
}

// Exec records the command line and exit code, not the output or env.
func (a *Audited) Exec(ctx context.Context, id string, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	res, err := a.Service.Exec(ctx, id, req, stdout, stderr)
	d := map[string]any{"command": req.Command}
	if len(req.Args) > 0 {
		d["args"] = req.Args
	}
	if req.Mode != "" {
		d["mode"] = req.Mode
	}
	if err == nil {
		d["exit_code"] = res.ExitCode
	}
	a.record(ctx, "sandbox.exec", id, "", d, err)
	return res, err
}

// ReadFile records the path read.
func (a *Audited) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, int64, error) {
	rc, n, err := a.Service.ReadFile(ctx, id, path)
	a.record(ctx, "file.read", id, "", map[string]any{"path": path}, err)
	return rc, n, err
}

// WriteFile records the path and size written, never the contents.
func (a *Audited) WriteFile(ctx context.Context, id, path string, mode uint32, body io.Reader, size int64) error {
	err := a.Service.WriteFile(ctx, id, path, mode, body, size)
	a.record(ctx, "file.write", id, "", map[string]any{"path": path, "size": size}, err)
	return err
}

// DeleteFile records the path deleted.
func (a *Audited) DeleteFile(ctx context.Context, id, path string, recursive bool) error {
	err := a.Service.DeleteFile(ctx, id, path, recursive)
	a.record(ctx, "file.delete", id, "", map[string]any{"path": path, "recursive": recursive}, err)
	return err
}

// MoveFile records both paths.
func (a *Audited) MoveFile(ctx context.Context, id, oldPath, newPath string) error {
	err := a.Service.MoveFile(ctx, id, oldPath, newPath)
	a.record(ctx, "file.move", id, "", map[string]any{"old_path": oldPath, "new_path": newPath}, err)
	return err
}

// ChmodFile records the path and mode.
func (a *Audited) ChmodFile(ctx context.Context, id, path, mode string) error {
	err := a.Service.ChmodFile(ctx, id, path, mode)
	a.record(ctx, "file.chmod", id, "", map[string]any{"path": path, "mode": mode}, err)
	return err
}

// RunAuditRetention deletes audit events older than retention every
// interval until ctx ends; retention 0 keeps everything.
func RunAuditRetention(ctx context.Context, gov store.Governance, retention, interval time.Duration, log *slog.Logger) {
	if gov == nil || retention <= 0 {
		return
	}
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := gov.Audit().Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("pruning audit events failed", "err", err)
		} else if n > 0 {
			log.Info("pruned audit events", "count", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
