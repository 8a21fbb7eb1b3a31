package docker

import (
	"context"
	"errors"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// classify maps an engine error to an errs class using the client's typed
// errors (never the message text). msg is the caller-safe description.
func classify(ctx context.Context, err error, msg string) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	c := errs.Internal
	switch {
	case client.IsErrConnectionFailed(err), cerrdefs.IsUnavailable(err):
		c = errs.Unavailable
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded), cerrdefs.IsDeadlineExceeded(err):
		c = errs.Timeout
	case ctx.Err() != nil, cerrdefs.IsCanceled(err):
		c = errs.Unavailable
	case cerrdefs.IsNotFound(err):
		c = errs.NotFound
	case cerrdefs.IsInvalidArgument(err):
		c = errs.Invalid
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err):
		c = errs.Conflict
	case cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err):
		c = errs.Forbidden
	case cerrdefs.IsResourceExhausted(err):
		c = errs.Limit
	}
	return errs.Wrap(c, err, "%s", msg)
}
