package sandbox

import (
	"context"
	"errors"
	"net"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// PortTarget resolves a running sandbox for a preview of port: NotFound for
// unknown, destroyed or invisible (other tenant) sandboxes, Conflict when it
// is not running. It opens no connection.
func (s *Service) PortTarget(ctx context.Context, id string, port int) (*Sandbox, error) {
	if port < 1 || port > 65535 {
		return nil, errs.New(errs.Invalid, "port %d is not between 1 and 65535", port)
	}
	rec, err := s.live(ctx, id)
	if err != nil {
		return nil, err
	}
	if State(rec.State) != StateRunning {
		return nil, errs.New(errs.Conflict, "sandbox %s is %s, not running", rec.ID, rec.State)
	}
	return toView(rec), nil
}

// DialPort opens a TCP stream to port on the sandbox's own loopback through
// its agent, so it works for every provider and for network "none". A port
// nobody listens on is Unavailable wrapping agent.ErrPortClosed.
func (s *Service) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, errs.New(errs.Invalid, "port %d is not between 1 and 65535", port)
	}
	t, err := s.reach(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := t.agent.DialPort(ctx, port)
	if err != nil {
		if errs.Is(err, errs.Unavailable) && !isPortClosed(err) {
			return nil, s.runtimeFailed(ctx, t, err)
		}
		return nil, err
	}
	return c, nil
}

func isPortClosed(err error) bool {
	return err != nil && errors.Is(err, agent.ErrPortClosed)
}
