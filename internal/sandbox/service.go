// Package sandbox is StacyVM's domain service: the use cases (create, exec,
// files, extend, destroy, reap, reconcile) over a store and a set of
// providers. It owns the state machine and writes every change to the store
// before and after touching a runtime, so a crash at any point is repaired by
// Reconcile on the next start.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Defaults are the limits and defaults applied to requests.
type Defaults struct {
	Image              string
	TTL                time.Duration
	MaxTTL             time.Duration
	MemoryMB           int
	VCPUs              float64
	DefaultExecTimeout time.Duration
	MaxExecTimeout     time.Duration
	MaxSandboxes       int // 0 = unlimited
	MaxPerOwner        int // 0 = unlimited
	ReapInterval       time.Duration
	DestroyedRetention time.Duration // destroyed records are purged after this
	CreateTimeout      time.Duration // bound on one provider Create
	// ReconcileInterval is how often the reaper also reconciles store and
	// runtimes while running (0 = only at start).
	ReconcileInterval time.Duration
}

// Options configure a Service.
type Options struct {
	Store           store.Store
	Providers       []provider.Provider
	DefaultProvider string
	Defaults        Defaults
	Logger          *slog.Logger
	// WarmPools is the number of ready sandboxes to keep per image on the
	// default provider (with default resources); empty disables pooling.
	WarmPools map[string]int
	// Now and NewID are injectable for tests; nil means time.Now and a
	// random "sb-" + 16 hex id.
	Now   func() time.Time
	NewID func() string
	// Observer and Events, when set, receive timings and lifecycle events
	// (metrics.go, events.go).
	Observer Observer
	Events   EventPublisher
	// Governance holds tenant policies and the audit log; nil disables
	// policy enforcement and the operation audit.
	Governance store.Governance
	// DefaultNetworks is each provider's network when a request names none
	// (checked against tenant network policies).
	DefaultNetworks map[string]string
}

// Service implements the sandbox use cases. It is safe for concurrent use and
// holds no lock across runtime calls.
type Service struct {
	store     store.Store
	providers map[string]provider.Provider
	names     []string
	def       string
	d         Defaults
	log       *slog.Logger
	now       func() time.Time
	newID     func() string
	obs       Observer       // nil: no timings recorded
	events    EventPublisher // nil: no lifecycle events

	// admitMu makes "count live sandboxes, then insert" atomic so limits
	// hold under concurrent creates. It never spans a runtime call.
	admitMu sync.Mutex

	health *healthCache
	warm   *warmPools // nil when no pool is configured
	quotas quotaCache
	gov    store.Governance  // nil: no policies, no operation audit
	defNet map[string]string // provider -> default network

	bg     sync.WaitGroup
	stopMu sync.Mutex
	stop   context.CancelFunc
}

// New validates opts and returns a Service. Call Start to run its background
// loops and Close to stop them.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errs.New(errs.Invalid, "sandbox service: no store")
	}
	s := &Service{
		store:     opts.Store,
		providers: map[string]provider.Provider{},
		def:       opts.DefaultProvider,
		d:         opts.Defaults,
		log:       opts.Logger,
		now:       opts.Now,
		newID:     opts.NewID,
		obs:       opts.Observer,
		events:    opts.Events,
		gov:       opts.Governance,
		defNet:    opts.DefaultNetworks,
	}
	for _, p := range opts.Providers {
		if _, dup := s.providers[p.Name()]; dup {
			return nil, errs.New(errs.Invalid, "provider %q configured twice", p.Name())
		}
		s.providers[p.Name()] = p
		s.names = append(s.names, p.Name())
	}
	sort.Strings(s.names)
	if len(s.providers) == 0 {
		return nil, errs.New(errs.Invalid, "sandbox service: no provider enabled")
	}
	if _, ok := s.providers[s.def]; !ok {
		return nil, errs.New(errs.Invalid, "default provider %q is not enabled (enabled: %s)", s.def, strings.Join(s.names, ", "))
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = NewID
	}
	if s.d.CreateTimeout <= 0 {
		s.d.CreateTimeout = 2 * time.Minute
	}
	if s.d.ReapInterval <= 0 {
		s.d.ReapInterval = 10 * time.Second
	}
	s.health = newHealthCache(s.providers, s.now)
	if len(opts.WarmPools) > 0 {
		s.warm = newWarmPools(s, opts.WarmPools)
	}
	return s, nil
}

// reservedPrefix marks metadata keys the server uses for itself.
const reservedPrefix = "stacyvm."

// NewID returns a fresh sandbox id: "sb-" and 16 hex digits.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return "sb-" + hex.EncodeToString(b[:])
}

// Start runs the reaper and the health refresher until Close.
func (s *Service) Start(ctx context.Context) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stop != nil {
		return
	}
	ctx, s.stop = context.WithCancel(ctx)
	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.reapLoop(ctx) }()
	go func() { defer s.bg.Done(); s.health.loop(ctx, 15*time.Second) }()
	if s.warm != nil {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.warm.loop(ctx) }()
	}
}

// Close stops the background loops and waits for them.
func (s *Service) Close() {
	s.stopMu.Lock()
	stop := s.stop
	s.stopMu.Unlock()
	if stop != nil {
		stop()
	}
	s.bg.Wait()
}

func (s *Service) provider(name string) (provider.Provider, error) {
	if name == "" {
		name = s.def
	}
	p, ok := s.providers[name]
	if !ok {
		return nil, errs.New(errs.Invalid, "provider %q is not configured (available: %s)", name, strings.Join(s.names, ", "))
	}
	return p, nil
}

// live returns the record of a sandbox that is not destroyed.
func (s *Service) live(ctx context.Context, id string) (*store.Sandbox, error) {
	if !validID(id) {
		return nil, errs.New(errs.NotFound, "sandbox %s not found", printable(id))
	}
	rec, err := s.store.Sandboxes().Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := visible(ctx, rec); err != nil { // tenancy.go: other tenants' sandboxes do not exist
		return nil, err
	}
	switch State(rec.State) {
	case StateDestroyed:
		return nil, errs.New(errs.NotFound, "sandbox %s not found (destroyed)", id)
	case StateWarm: // not handed out yet: nobody may know or touch it
		return nil, errs.New(errs.NotFound, "sandbox %s not found", id)
	}
	return rec, nil
}

func validID(id string) bool {
	if !strings.HasPrefix(id, "sb-") || len(id) > 64 || len(id) < 4 {
		return false
	}
	for _, r := range id[3:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// printable shortens and sanitises an id for an error message.
func printable(id string) string {
	if len(id) > 64 {
		id = id[:64] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, id)
}

func handleOf(rec *store.Sandbox) (provider.Handle, error) {
	var h provider.Handle
	if len(rec.Handle) == 0 {
		return h, errs.New(errs.Conflict, "sandbox %s has no runtime yet (state %s)", rec.ID, rec.State)
	}
	if err := json.Unmarshal(rec.Handle, &h); err != nil {
		return h, errs.Wrap(errs.Internal, err, "sandbox %s has a corrupt runtime handle", rec.ID)
	}
	return h, nil
}

func toView(rec *store.Sandbox) *Sandbox {
	return &Sandbox{
		ID:        rec.ID,
		State:     State(rec.State),
		Provider:  rec.Provider,
		Image:     rec.Image,
		MemoryMB:  rec.MemoryMB,
		VCPUs:     rec.VCPUs,
		Network:   rec.Network,
		OwnerID:   rec.OwnerID,
		TenantID:  rec.TenantID,
		Metadata:  rec.Metadata,
		CreatedAt: rec.CreatedAt,
		ExpiresAt: rec.ExpiresAt,
		Error:     rec.Error,
	}
}
