package sandbox

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// enforcePolicy checks a normalized request against its tenant's policies
// (image, provider, network). It runs on every path that hands out a
// running sandbox: Create before a warm pool claim, and provision for cold
// creates (API spawn and template spawn alike). Admission reports the same
// decision. Values are checked after defaults are applied, so leaving a
// field out cannot dodge a rule.
func (s *Service) enforcePolicy(ctx context.Context, n normalized) error {
	if s.gov == nil || n.req.TenantID == "" {
		return nil
	}
	ps, err := s.gov.Tenants().ListPolicies(ctx, n.req.TenantID)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return nil
	}
	rules := make([]auth.Rule, len(ps))
	hasNet := false
	for i, p := range ps {
		rules[i] = auth.Rule{ID: p.ID, Tenant: p.TenantID, Kind: p.Kind, Effect: p.Effect, Pattern: p.Pattern, Priority: p.Priority}
		hasNet = hasNet || p.Kind == auth.PolicyNetwork
	}
	network := n.req.Network
	if network == "" && hasNet {
		network = s.defNet[n.req.Provider]
		if network == "" {
			return errs.New(errs.Invalid, "tenant %s restricts networks: name the network explicitly", n.req.TenantID)
		}
	}
	images := n.images
	if len(images) == 0 { // normalize always sets them; never match nothing
		images = []string{n.req.Image}
	}
	for _, c := range []struct {
		kind   string
		values []string
	}{
		{auth.PolicyImage, images}, // every spelling of the image (imageref.go)
		{auth.PolicyProvider, []string{n.req.Provider}},
		{auth.PolicyNetwork, []string{network}},
	} {
		if c.kind == auth.PolicyNetwork && !hasNet {
			continue
		}
		if d := auth.EvaluateNames(rules, c.kind, c.values); !d.Allowed {
			return errs.New(errs.Forbidden, "denied by tenant policy: %s", d.Reason)
		}
	}
	return nil
}
