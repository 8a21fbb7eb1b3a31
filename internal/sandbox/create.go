package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store"
)

// normalized is a CreateRequest with defaults applied and limits checked.
type normalized struct {
	req    CreateRequest
	prov   provider.Provider
	images []string // every name of req.Image that image policies see (imageref.go)
}

func (s *Service) normalize(req CreateRequest) (normalized, error) {
	if req.TTL < 0 {
		return normalized{}, errs.New(errs.Invalid, "ttl must not be negative")
	}
	if req.TTL == 0 {
		req.TTL = s.d.TTL
	}
	if req.TTL <= 0 {
		req.TTL = 30 * time.Minute
	}
	if s.d.MaxTTL > 0 && req.TTL > s.d.MaxTTL {
		return normalized{}, errs.New(errs.Limit, "ttl %s exceeds the maximum of %s", req.TTL, s.d.MaxTTL)
	}
	if req.MemoryMB < 0 {
		return normalized{}, errs.New(errs.Invalid, "memory_mb must not be negative")
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = s.d.MemoryMB
	}
	if req.MemoryMB != 0 && req.MemoryMB < 16 {
		return normalized{}, errs.New(errs.Invalid, "memory_mb must be at least 16")
	}
	if req.VCPUs < 0 {
		return normalized{}, errs.New(errs.Invalid, "vcpus must not be negative")
	}
	if req.VCPUs == 0 {
		req.VCPUs = s.d.VCPUs
	}
	if req.Image == "" {
		req.Image = s.d.Image
	}
	if req.Image == "" {
		return normalized{}, errs.New(errs.Invalid, "image is required (no default image configured)")
	}
	img, err := canonicalImage(req.Image)
	if err != nil {
		return normalized{}, err
	}
	req.Image = img.familiar // docker.io/library/x and x are one image: record one spelling
	p, err := s.provider(req.Provider)
	if err != nil {
		return normalized{}, err
	}
	req.Provider = p.Name()
	switch req.Network {
	case "":
	case provider.NetworkNone, provider.NetworkBridge:
		if !contains(p.Capabilities().NetworkModes, req.Network) {
			return normalized{}, errs.New(errs.Invalid, "provider %s does not support network %q (supported: %s)", p.Name(), req.Network, strings.Join(p.Capabilities().NetworkModes, ", "))
		}
	case "allowlist":
		return normalized{}, errs.New(errs.Invalid, "network \"allowlist\" is not supported yet; use \"none\" or \"bridge\"")
	default:
		return normalized{}, errs.New(errs.Invalid, "network must be %q or %q", provider.NetworkNone, provider.NetworkBridge)
	}
	for k := range req.Env {
		if err := validEnvKey(k); err != nil {
			return normalized{}, err
		}
	}
	for k, v := range req.Metadata {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return normalized{}, errs.New(errs.Invalid, "metadata keys must be 1-128 characters and values at most 1024")
		}
		if strings.HasPrefix(k, reservedPrefix) {
			return normalized{}, errs.New(errs.Invalid, "metadata keys starting with %q are reserved", reservedPrefix)
		}
	}
	if len(req.Metadata) > 64 {
		return normalized{}, errs.New(errs.Invalid, "at most 64 metadata entries")
	}
	return normalized{req: req, prov: p, images: img.names}, nil
}

func validEnvKey(k string) error {
	if k == "" || len(k) > 256 || strings.ContainsAny(k, "=\x00") {
		return errs.New(errs.Invalid, "environment variable name %q is invalid", printable(k))
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Admission reports whether Create would be allowed now, without creating.
func (s *Service) Admission(ctx context.Context, req CreateRequest) (Admission, error) {
	req, err := scopeRequest(ctx, req)
	if err != nil {
		return Admission{}, err
	}
	n, err := s.normalize(req)
	if err != nil && !errs.Is(err, errs.Limit) {
		return Admission{}, err
	}
	a := Admission{Allowed: true, MaxSandboxes: s.d.MaxSandboxes, MaxOwnerSandboxes: s.d.MaxPerOwner, MaxTTL: s.d.MaxTTL}
	if err != nil { // ttl over the maximum: never queueable
		a.Allowed, a.Reason = false, "max_ttl"
	}
	lim, err2 := s.limitsFor(ctx, req.OwnerID)
	if err2 != nil {
		return Admission{}, err2
	}
	a.MaxOwnerSandboxes = lim.MaxSandboxes
	if a.Allowed && s.checkOwnerTTL(ctx, req.OwnerID, n.req.TTL) != nil {
		a.Allowed, a.Reason = false, "max_ttl"
	}
	if a.Allowed {
		if perr := s.enforcePolicy(ctx, n); errs.Is(perr, errs.Forbidden) {
			a.Allowed, a.Reason = false, "policy_denied" // never queueable: waiting will not help
		} else if perr != nil {
			return Admission{}, perr
		}
	}
	active, owner, err2 := s.activeCounts(ctx, req.OwnerID)
	if err2 != nil {
		return Admission{}, err2
	}
	a.ActiveSandboxes, a.ActiveOwnerSandboxes = active, owner
	if a.Allowed {
		if reason := s.capacityReason(active, owner, n.req.OwnerID, lim.MaxSandboxes); reason != "" {
			a.Allowed, a.Queueable, a.Reason = false, true, reason
		}
	}
	return a, nil
}

func (s *Service) activeCounts(ctx context.Context, owner string) (active, perOwner int, err error) {
	live := visibleStates()
	active, err = s.store.Sandboxes().Count(ctx, store.SandboxFilter{States: live})
	if err != nil || owner == "" {
		return active, 0, err
	}
	perOwner, err = s.store.Sandboxes().Count(ctx, store.SandboxFilter{States: live, OwnerID: owner})
	return active, perOwner, err
}

func (s *Service) capacityReason(active, perOwner int, owner string, maxPerOwner int) string {
	if s.d.MaxSandboxes > 0 && active >= s.d.MaxSandboxes {
		return "max_sandboxes"
	}
	if owner != "" && maxPerOwner > 0 && perOwner >= maxPerOwner {
		return "max_sandboxes_per_owner"
	}
	return ""
}

// liveStates are every state that may hold a runtime (reconcile sees these).
func liveStates() []string {
	var out []string
	for st := range transitions {
		if st != StateDestroyed {
			out = append(out, string(st))
		}
	}
	return out
}

// visibleStates are the live states callers see: warm pool members are
// neither listed nor counted against limits until claimed.
func visibleStates() []string {
	var out []string
	for _, st := range liveStates() {
		if State(st) != StateWarm {
			out = append(out, st)
		}
	}
	return out
}

// Create makes a sandbox and returns it running. A request that matches a
// warm pool is served by claiming a ready sandbox; otherwise a runtime is
// created. The record is written in state creating before the runtime call
// and moved on (with the runtime handle) after it, so a crash in between is
// repaired by Reconcile.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Sandbox, error) {
	req, err := scopeRequest(ctx, req) // tenancy.go: tenant and owner from the principal
	if err != nil {
		return nil, err
	}
	if req.Template != "" {
		return s.createFromTemplate(ctx, req)
	}
	n, err := s.normalize(req)
	if err != nil {
		return nil, err
	}
	if err := s.checkOwnerTTL(ctx, n.req.OwnerID, n.req.TTL); err != nil {
		return nil, err
	}
	if err := s.enforcePolicy(ctx, n); err != nil { // before a warm claim too
		return nil, err
	}
	start := s.now()
	if s.warm != nil && s.warm.matches(n) {
		sb, err := s.claimWarm(ctx, n.req)
		if err == nil || !errs.Is(err, errs.NotFound) {
			s.observeSpawn(n.req.Provider, "warm", err, start) // metrics.go
			return sb, err
		}
		// The pool is empty right now: fall through to a cold create.
	}
	sb, err := s.provision(ctx, n, StateRunning)
	s.observeSpawn(n.req.Provider, "cold", err, start)
	return sb, err
}

// provision creates a runtime for n and records it in state final (running
// for callers, warm for pool members).
func (s *Service) provision(ctx context.Context, n normalized, final State) (*Sandbox, error) {
	if final != StateWarm { // every cold path (API, template spawn) passes here
		if err := s.enforcePolicy(ctx, n); err != nil {
			return nil, err
		}
	}
	req := n.req
	now := s.now().UTC()
	rec := &store.Sandbox{
		ID:        s.newID(),
		State:     string(StateCreating),
		Provider:  req.Provider,
		Image:     req.Image,
		MemoryMB:  req.MemoryMB,
		VCPUs:     req.VCPUs,
		Network:   req.Network,
		OwnerID:   req.OwnerID,
		TenantID:  req.TenantID,
		Metadata:  req.Metadata,
		Env:       req.Env,
		CreatedAt: now,
		ExpiresAt: now.Add(req.TTL),
	}
	var err error
	if final == StateWarm {
		err = s.store.Sandboxes().Create(ctx, rec) // pool members are not counted against limits
	} else {
		err = s.admitAndInsert(ctx, rec)
	}
	if err != nil {
		return nil, err
	}
	s.emit(events.SandboxCreated, rec, "")
	log := s.log.With("sandbox_id", rec.ID, "provider", rec.Provider)

	cctx, cancel := context.WithTimeout(ctx, s.d.CreateTimeout)
	defer cancel()
	start := s.now()
	h, cerr := n.prov.Create(cctx, provider.Spec{
		SandboxID: rec.ID,
		Image:     rec.Image,
		MemoryMB:  rec.MemoryMB,
		VCPUs:     rec.VCPUs,
		Network:   rec.Network,
		Env:       rec.Env,
	})
	// The request may be gone by now; the record must still be settled.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer wcancel()
	if cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) && ctx.Err() == nil {
			cerr = errs.Wrap(errs.Unavailable, cerr, "provider %s did not start the sandbox within %s", rec.Provider, s.d.CreateTimeout)
		}
		log.Warn("create failed", "err", cerr)
		s.settleFailed(wctx, rec.ID, cerr)
		return nil, cerr
	}
	hb, _ := json.Marshal(h)
	out, err := s.store.Sandboxes().Update(wctx, rec.ID, func(sb *store.Sandbox) error {
		if err := checkTransition(sb.ID, State(sb.State), final); err != nil {
			return err // destroyed while creating
		}
		sb.State = string(final)
		sb.Handle = hb
		return nil
	})
	if err != nil {
		log.Warn("sandbox destroyed or lost while creating; removing runtime", "err", err)
		if derr := n.prov.Destroy(wctx, h); derr != nil {
			log.Error("removing runtime failed; reconcile will retry", "err", derr)
		}
		if errs.Is(err, errs.Conflict) {
			return nil, errs.New(errs.Conflict, "sandbox %s was destroyed while it was being created", rec.ID)
		}
		return nil, err
	}
	s.emit(events.SandboxRunning, out, "")
	log.Info("sandbox created", "image", rec.Image, "state", final, "duration", s.now().Sub(start))
	return toView(out), nil
}

// admitAndInsert checks capacity and inserts the record atomically with
// respect to other creates in this process.
func (s *Service) admitAndInsert(ctx context.Context, rec *store.Sandbox) error {
	lim, err := s.limitsFor(ctx, rec.OwnerID) // before the lock: may read the store
	if err != nil {
		return err
	}
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	if s.d.MaxSandboxes > 0 || (rec.OwnerID != "" && lim.MaxSandboxes > 0) {
		active, owner, err := s.activeCounts(ctx, rec.OwnerID)
		if err != nil {
			return err
		}
		switch s.capacityReason(active, owner, rec.OwnerID, lim.MaxSandboxes) {
		case "max_sandboxes":
			return errs.New(errs.Limit, "sandbox limit reached (%d of %d)", active, s.d.MaxSandboxes)
		case "max_sandboxes_per_owner":
			return errs.New(errs.Limit, "owner %s has reached the limit of %d sandboxes", rec.OwnerID, lim.MaxSandboxes)
		}
	}
	return s.store.Sandboxes().Create(ctx, rec)
}

// settleFailed marks a sandbox whose runtime could not be created as
// destroyed, keeping the reason; the provider already cleaned up.
func (s *Service) settleFailed(ctx context.Context, id string, cause error) {
	rec, err := s.store.Sandboxes().Update(ctx, id, func(sb *store.Sandbox) error {
		sb.State = string(StateDestroyed)
		sb.DestroyedAt = s.now().UTC()
		sb.Error = fmt.Sprintf("create failed: %s", errs.Message(cause))
		return nil
	})
	s.emit(events.SandboxError, rec, errs.Message(cause))
	if err != nil {
		s.log.Error("recording failed create", "sandbox_id", id, "err", err)
	}
}
