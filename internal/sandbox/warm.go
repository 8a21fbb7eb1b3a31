package sandbox

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/store"
)

// A warm pool keeps ready sandboxes per image on the default provider. They
// are ordinary records (state warm), reaped and reconciled like the rest; a
// create that matches claims one with a compare-and-set update, so a pool
// sandbox is handed out once and never after anyone used it.

// warmLabel is the metadata key naming a warm sandbox's pool (its image).
const warmLabel = reservedPrefix + "warm"

// warmTTL bounds how long a pool member waits; the reaper replaces older ones.
const warmTTL = time.Hour

// WarmPoolInfo describes one warm pool.
type WarmPoolInfo struct {
	Image    string
	Provider string
	Size     int // target
	Ready    int // warm sandboxes waiting
	Creating int // being started for the pool
}

type warmPools struct {
	s     *Service
	sizes map[string]int
	kick  chan struct{}
}

func newWarmPools(s *Service, sizes map[string]int) *warmPools {
	return &warmPools{s: s, sizes: sizes, kick: make(chan struct{}, 1)}
}

// matches reports whether a normalised request can be served from a pool:
// default provider, pooled image, default resources and network. Env and
// metadata are applied at claim time.
func (w *warmPools) matches(n normalized) bool {
	r, d := n.req, w.s.d
	return r.Provider == w.s.def && w.sizes[r.Image] > 0 &&
		r.MemoryMB == d.MemoryMB && r.VCPUs == d.VCPUs && r.Network == ""
}

func (w *warmPools) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// claimWarm hands out one warm sandbox for req, or NotFound when the pool is
// empty.
func (s *Service) claimWarm(ctx context.Context, req CreateRequest) (*Sandbox, error) {
	defer s.warm.wake()
	for range 3 { // the pool may change under us; list again
		cands, err := s.store.Sandboxes().List(ctx, store.SandboxFilter{
			States: []string{string(StateWarm)}, Provider: req.Provider,
			Labels: map[string]string{warmLabel: req.Image}, Limit: maxClaimCandidates,
		})
		if err != nil {
			return nil, err
		}
		if len(cands) == 0 {
			return nil, errs.New(errs.NotFound, "warm pool for %s is empty", req.Image)
		}
		// Concurrent claimers start at different candidates, so a burst
		// does not queue on the same few records, and each walks the whole
		// list: one that lost a race tries the next instead of giving up
		// and falling back to a cold spawn while warm sandboxes remain.
		off := rand.IntN(len(cands))
		for i := range cands {
			c := cands[(off+i)%len(cands)]
			sb, err := s.claimOne(ctx, c.ID, req)
			if err == nil {
				s.log.Info("sandbox claimed from warm pool", "sandbox_id", sb.ID, "image", req.Image)
				return sb, nil
			}
			if !errs.Is(err, errs.Conflict) {
				return nil, err
			}
		}
	}
	return nil, errs.New(errs.NotFound, "warm pool for %s is empty", req.Image)
}

// maxClaimCandidates bounds the warm records one claim lists.
const maxClaimCandidates = 256

func (s *Service) claimOne(ctx context.Context, id string, req CreateRequest) (*Sandbox, error) {
	lim, err := s.limitsFor(ctx, req.OwnerID) // before the lock: may read the store
	if err != nil {
		return nil, err
	}
	// Only a limit needs "count, then claim" to be atomic; without one,
	// claims run concurrently (the compare-and-set update below is what
	// hands each warm sandbox out once).
	if s.d.MaxSandboxes > 0 || (req.OwnerID != "" && lim.MaxSandboxes > 0) {
		s.admitMu.Lock()
		defer s.admitMu.Unlock()
		active, owner, err := s.activeCounts(ctx, req.OwnerID)
		if err != nil {
			return nil, err
		}
		if reason := s.capacityReason(active, owner, req.OwnerID, lim.MaxSandboxes); reason != "" {
			return nil, errs.New(errs.Limit, "sandbox limit reached (%s)", reason)
		}
	}
	rec, err := s.store.Sandboxes().Update(ctx, id, func(sb *store.Sandbox) error {
		if State(sb.State) != StateWarm {
			return errs.New(errs.Conflict, "sandbox %s was claimed by someone else", sb.ID)
		}
		now := s.now().UTC()
		sb.State = string(StateRunning)
		sb.OwnerID, sb.TenantID = req.OwnerID, req.TenantID
		sb.Metadata, sb.Env = req.Metadata, req.Env
		sb.CreatedAt, sb.ExpiresAt = now, now.Add(req.TTL)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.emit(events.SandboxCreated, rec, "")
	s.emit(events.SandboxRunning, rec, "")
	return toView(rec), nil
}

// WarmPools reports every pool's target and current fill.
func (s *Service) WarmPools(ctx context.Context) ([]WarmPoolInfo, error) {
	if s.warm == nil {
		return []WarmPoolInfo{}, nil
	}
	out := []WarmPoolInfo{}
	for _, img := range s.warm.images() {
		ready, creating, err := s.warm.count(ctx, img)
		if err != nil {
			return nil, err
		}
		out = append(out, WarmPoolInfo{Image: img, Provider: s.def, Size: s.warm.sizes[img], Ready: ready, Creating: creating})
	}
	return out, nil
}

func (w *warmPools) images() []string {
	out := make([]string, 0, len(w.sizes))
	for img := range w.sizes {
		out = append(out, img)
	}
	sort.Strings(out)
	return out
}

func (w *warmPools) count(ctx context.Context, image string) (ready, creating int, err error) {
	f := store.SandboxFilter{Provider: w.s.def, Labels: map[string]string{warmLabel: image}}
	f.States = []string{string(StateWarm)}
	if ready, err = w.s.store.Sandboxes().Count(ctx, f); err != nil {
		return 0, 0, err
	}
	f.States = []string{string(StateCreating)}
	creating, err = w.s.store.Sandboxes().Count(ctx, f)
	return ready, creating, err
}

// loop keeps every pool at its size until ctx ends: at start, after each
// claim, and every 30 s (to replace reaped or failed members).
func (w *warmPools) loop(ctx context.Context) {
	w.retire(ctx)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		for _, img := range w.images() {
			w.refill(ctx, img)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
		}
	}
}

func (w *warmPools) refill(ctx context.Context, image string) {
	for ctx.Err() == nil {
		ready, creating, err := w.count(ctx, image)
		if err != nil {
			w.s.log.Warn("warm pool: counting failed", "image", image, "err", err)
			return
		}
		if ready+creating >= w.sizes[image] {
			return
		}
		n, err := w.s.normalize(CreateRequest{Image: image, TTL: min(warmTTL, w.s.maxTTLOr(warmTTL))})
		if err == nil {
			n.req.Metadata = map[string]string{warmLabel: image}
			_, err = w.s.provision(ctx, n, StateWarm)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.s.log.Warn("warm pool: refill failed; retrying later", "image", image, "err", err)
			}
			return // the ticker retries; no hot loop on a broken image
		}
	}
}

// retire destroys warm sandboxes of images no longer pooled.
func (w *warmPools) retire(ctx context.Context) {
	recs, err := w.s.store.Sandboxes().List(ctx, store.SandboxFilter{States: []string{string(StateWarm)}})
	if err != nil {
		return
	}
	for _, r := range recs {
		if img := r.Metadata[warmLabel]; w.sizes[img] == 0 || r.Provider != w.s.def {
			if err := w.s.destroy(ctx, r, "warm pool no longer configured"); err != nil {
				w.s.log.Warn("warm pool: retiring failed", "sandbox_id", r.ID, "err", err)
			}
		}
	}
}

func (s *Service) maxTTLOr(d time.Duration) time.Duration {
	if s.d.MaxTTL > 0 {
		return s.d.MaxTTL
	}
	return d
}
