package tracing

import (
	"context"
	"io"

	"go.opentelemetry.io/otel/attribute"

	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// Service is the audited sandbox service with a span around Create, Exec
// and Destroy. Every other method (files, previews, archives, interactive
// processes) is the embedded service's, so optional API interfaces found by
// type assertion keep working.
type Service struct {
	*sandbox.Audited
	t *Tracing
}

// Service wraps s.
func (t *Tracing) Service(s *sandbox.Audited) *Service { return &Service{Audited: s, t: t} }

// Create spans "sandbox.create" with the image, provider and new sandbox id
// (the requested image and provider, never env values or metadata).
func (s *Service) Create(ctx context.Context, req sandbox.CreateRequest) (*sandbox.Sandbox, error) {
	ctx, span := s.t.start(ctx, "sandbox.create", attribute.String("stacyvm.image", req.Image))
	sb, err := s.Audited.Create(ctx, req)
	if sb != nil {
		span.SetAttributes(AttrSandboxID.String(sb.ID), AttrProvider.String(sb.Provider), attribute.String("stacyvm.image", sb.Image))
	}
	end(span, err)
	return sb, err
}

// Exec spans "sandbox.exec" with the exit code and timeout flag; the
// command line and environment stay out (they often carry secrets).
func (s *Service) Exec(ctx context.Context, id string, req sandbox.ExecRequest, stdout, stderr io.Writer) (sandbox.ExecResult, error) {
	ctx, span := s.t.start(ctx, "sandbox.exec", AttrSandboxID.String(id))
	res, err := s.Audited.Exec(ctx, id, req, stdout, stderr)
	if err == nil {
		span.SetAttributes(attribute.Int("stacyvm.exec.exit_code", res.ExitCode), attribute.Bool("stacyvm.exec.timed_out", res.TimedOut))
	}
	end(span, err)
	return res, err
}

// Destroy spans "sandbox.destroy".
func (s *Service) Destroy(ctx context.Context, id string) error {
	ctx, span := s.t.start(ctx, "sandbox.destroy", AttrSandboxID.String(id))
	err := s.Audited.Destroy(ctx, id)
	end(span, err)
	return err
}

// The API finds these by type assertion; the wrapper must keep them.
var (
	_ api.Service            = (*Service)(nil)
	_ api.PreviewService     = (*Service)(nil)
	_ api.ArchiveService     = (*Service)(nil)
	_ api.InteractiveService = (*Service)(nil)
)
