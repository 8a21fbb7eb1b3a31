package sandbox

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store"
)

// ReconcileReport counts what Reconcile did.
type ReconcileReport struct {
	Adopted         int // runtimes of sandboxes caught mid-create, now running
	MarkedDestroyed int // records whose runtime vanished
	OrphansRemoved  int // labelled runtimes without a live record
	Kept            int // records and runtimes that agree
	Failed          int // providers or runtimes that could not be checked
}

// Reconcile makes the store and the runtimes agree, after a restart or a
// crash at any point of a create or destroy:
//   - a record in state creating whose runtime exists and answers is adopted
//     (running); without a runtime it is marked destroyed;
//   - a live record whose runtime is missing or exited is marked destroyed
//     (the exited runtime is removed);
//   - a labelled runtime with no live record (an orphan) is removed.
//
// Providers that cannot be listed are skipped and reported; their records
// are left untouched, never guessed.
func (s *Service) Reconcile(ctx context.Context) (ReconcileReport, error) {
	return s.reconcile(ctx, 0)
}

// reconcile is Reconcile that leaves alone records in state creating younger
// than minAge: while the server runs, those are creates in flight, not
// leftovers of a crash (the periodic sweep passes the create timeout).
func (s *Service) reconcile(ctx context.Context, minAge time.Duration) (ReconcileReport, error) {
	var rep ReconcileReport
	recs, err := s.store.Sandboxes().List(ctx, store.SandboxFilter{States: liveStates()})
	if err != nil {
		return rep, err
	}
	byProvider := map[string][]*store.Sandbox{}
	for _, r := range recs {
		byProvider[r.Provider] = append(byProvider[r.Provider], r)
	}
	for _, name := range s.names {
		p := s.providers[name]
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		handles, err := p.List(lctx)
		cancel()
		if err != nil {
			s.log.Warn("reconcile: cannot list runtimes; leaving its sandboxes as they are", "provider", name, "err", err)
			rep.Failed++
			continue
		}
		s.reconcileProvider(ctx, p, byProvider[name], handles, minAge, &rep)
		delete(byProvider, name)
	}
	for name, rs := range byProvider { // records of providers no longer configured
		s.log.Warn("reconcile: sandboxes of a provider that is not configured are left as they are", "provider", name, "count", len(rs))
	}
	level := slog.LevelInfo
	if minAge > 0 && rep == (ReconcileReport{Kept: rep.Kept}) {
		level = slog.LevelDebug // a periodic sweep that found nothing to do
	}
	s.log.Log(ctx, level, "reconcile finished", "adopted", rep.Adopted, "marked_destroyed", rep.MarkedDestroyed,
		"orphans_removed", rep.OrphansRemoved, "kept", rep.Kept, "failed", rep.Failed)
	return rep, nil
}

func (s *Service) reconcileProvider(ctx context.Context, p provider.Provider, recs []*store.Sandbox, handles []provider.Handle, minAge time.Duration, rep *ReconcileReport) {
	runtimes := map[string]provider.Handle{}
	for _, h := range handles {
		runtimes[h.SandboxID] = h
	}
	cutoff := s.now().Add(-minAge)
	for _, rec := range recs {
		h, exists := runtimes[rec.ID]
		delete(runtimes, rec.ID)
		if State(rec.State) == StateCreating && rec.CreatedAt.After(cutoff) {
			continue // a create in flight owns this record and its runtime
		}
		if !exists {
			s.markDestroyed(ctx, rec, "runtime vanished while the server was down", rep)
			continue
		}
		st, err := p.Inspect(ctx, h)
		if err != nil {
			s.log.Warn("reconcile: inspect failed", "sandbox_id", rec.ID, "err", err)
			rep.Failed++
			continue
		}
		if st.State != provider.RuntimeRunning {
			if err := p.Destroy(ctx, h); err != nil {
				s.log.Warn("reconcile: removing exited runtime failed", "sandbox_id", rec.ID, "err", err)
				rep.Failed++
				continue
			}
			s.markDestroyed(ctx, rec, "runtime exited while the server was down", rep)
			continue
		}
		if State(rec.State) == StateCreating {
			s.adopt(ctx, p, rec, h, rep)
			continue
		}
		rep.Kept++
	}
	for id, h := range runtimes { // no live record: an orphan
		if err := p.Destroy(ctx, h); err != nil {
			s.log.Warn("reconcile: removing orphan runtime failed", "sandbox_id", id, "err", err)
			rep.Failed++
			continue
		}
		s.log.Info("reconcile: removed orphan runtime", "sandbox_id", id, "provider", p.Name())
		rep.OrphansRemoved++
	}
}

// adopt finishes a create interrupted after the runtime started: if its agent
// answers, the sandbox becomes running; otherwise the runtime is removed.
func (s *Service) adopt(ctx context.Context, p provider.Provider, rec *store.Sandbox, h provider.Handle, rep *ReconcileReport) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := p.Agent(actx, h)
	if err == nil {
		_, err = c.Ping(actx)
	}
	if err != nil {
		s.log.Warn("reconcile: half-created runtime does not answer; removing it", "sandbox_id", rec.ID, "err", err)
		if derr := p.Destroy(ctx, h); derr != nil {
			rep.Failed++
			return
		}
		s.markDestroyed(ctx, rec, "server stopped while the sandbox was being created", rep)
		return
	}
	hb, _ := json.Marshal(h)
	if _, err := s.store.Sandboxes().Update(ctx, rec.ID, func(sb *store.Sandbox) error {
		if err := checkTransition(sb.ID, State(sb.State), StateRunning); err != nil {
			return err
		}
		sb.State = string(StateRunning)
		sb.Handle = hb
		return nil
	}); err != nil {
		s.log.Warn("reconcile: adopting failed", "sandbox_id", rec.ID, "err", err)
		rep.Failed++
		return
	}
	s.log.Info("reconcile: adopted runtime of an interrupted create", "sandbox_id", rec.ID)
	rep.Adopted++
}

func (s *Service) markDestroyed(ctx context.Context, rec *store.Sandbox, reason string, rep *ReconcileReport) {
	upd, err := s.store.Sandboxes().Update(ctx, rec.ID, func(sb *store.Sandbox) error {
		sb.State = string(StateDestroyed)
		sb.DestroyedAt = s.now().UTC()
		sb.Error = reason
		return nil
	})
	if err != nil {
		s.log.Warn("reconcile: marking destroyed failed", "sandbox_id", rec.ID, "err", err)
		rep.Failed++
		return
	}
	s.emit(events.SandboxDestroyed, upd, reason)
	s.log.Info("reconcile: marked destroyed", "sandbox_id", rec.ID, "reason", reason)
	rep.MarkedDestroyed++
}
