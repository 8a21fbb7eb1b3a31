package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/sandbox"
)

// fakeService is an in-memory Service with the real semantics the API
// relies on: destroyed sandboxes are NotFound, ttl over max is Limit, exec of
// "exit 3" exits 3, a command running past its timeout is killed and
// reported TimedOut, files live per sandbox. Scripted commands let tests
// drive exact output chunks.
type fakeService struct {
	mu        sync.Mutex
	next      int
	now       func() time.Time
	maxTTL    time.Duration
	sandboxes map[string]*sandbox.Sandbox
	files     map[string]map[string]fakeFile // sandbox id → clean path → file
	readyErr  error
	warm      int // size of a pretend warm pool; 0 = none
	scripts   map[string]func(ctx context.Context, stdout, stderr io.Writer) (sandbox.ExecResult, error)
	tq        fakeTemplatesQuotas
}

type fakeFile struct {
	data []byte
	mode uint32
	mod  time.Time
}

func newFakeService() *fakeService {
	return &fakeService{
		now:       time.Now,
		maxTTL:    24 * time.Hour,
		sandboxes: map[string]*sandbox.Sandbox{},
		files:     map[string]map[string]fakeFile{},
		scripts:   map[string]func(context.Context, io.Writer, io.Writer) (sandbox.ExecResult, error){},
	}
}

func (f *fakeService) Create(ctx context.Context, req sandbox.CreateRequest) (*sandbox.Sandbox, error) {
	if req.Template != "" {
		t, err := f.GetTemplate(ctx, req.Template)
		if err != nil {
			return nil, err
		}
		if req.Image != "" && req.Image != t.Image {
			return nil, errs.New(errs.Invalid, "image conflicts with template %s", t.Name)
		}
		req.Image, req.Template = t.Image, ""
	}
	if req.TTL < 0 {
		return nil, errs.New(errs.Invalid, "ttl must not be negative")
	}
	if req.TTL > f.maxTTL {
		return nil, errs.New(errs.Limit, "ttl %s exceeds max_ttl %s", req.TTL, f.maxTTL)
	}
	if req.Provider != "" && req.Provider != "mock" {
		return nil, errs.New(errs.Invalid, "unknown provider %q", req.Provider)
	}
	if req.MemoryMB < 0 || req.VCPUs < 0 {
		return nil, errs.New(errs.Invalid, "memory_mb and vcpus must not be negative")
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = 30 * time.Minute
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	now := f.now()
	sb := &sandbox.Sandbox{
		ID: fmt.Sprintf("sb-%012x", f.next), State: sandbox.StateRunning, Provider: "mock",
		Image: cmpOr(req.Image, "stacyvm/busybox"), MemoryMB: cmpOr(req.MemoryMB, 512), VCPUs: cmpOr(req.VCPUs, 1),
		Network: cmpOr(req.Network, "none"), OwnerID: req.OwnerID, Metadata: req.Metadata,
		CreatedAt: now.Add(time.Duration(f.next) * time.Millisecond), ExpiresAt: now.Add(ttl),
	}
	f.sandboxes[sb.ID] = sb
	f.files[sb.ID] = map[string]fakeFile{}
	cp := *sb
	return &cp, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (f *fakeService) Admission(_ context.Context, req sandbox.CreateRequest) (sandbox.Admission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := sandbox.Admission{Allowed: true, MaxSandboxes: 10, MaxOwnerSandboxes: 3, MaxTTL: f.maxTTL}
	for _, sb := range f.sandboxes {
		if sb.State.Live() {
			a.ActiveSandboxes++
			if req.OwnerID != "" && sb.OwnerID == req.OwnerID {
				a.ActiveOwnerSandboxes++
			}
		}
	}
	if req.TTL > f.maxTTL {
		a.Allowed, a.Reason = false, "max_ttl"
	}
	return a, nil
}

// live returns the sandbox or NotFound; callers hold mu.
func (f *fakeService) live(id string) (*sandbox.Sandbox, error) {
	sb, ok := f.sandboxes[id]
	if !ok || !sb.State.Live() {
		return nil, errs.New(errs.NotFound, "sandbox not found: %s", id)
	}
	return sb, nil
}

func (f *fakeService) Get(_ context.Context, id string) (*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.live(id)
	if err != nil {
		return nil, err
	}
	cp := *sb
	return &cp, nil
}

func (f *fakeService) List(_ context.Context, flt sandbox.ListFilter) ([]*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*sandbox.Sandbox
	for _, sb := range f.sandboxes {
		if !sb.State.Live() || (flt.OwnerID != "" && sb.OwnerID != flt.OwnerID) || (flt.State != "" && sb.State != flt.State) {
			continue
		}
		match := true
		for k, v := range flt.Labels {
			if sb.Metadata[k] != v {
				match = false
			}
		}
		if match {
			cp := *sb
			out = append(out, &cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if flt.Limit > 0 && len(out) > flt.Limit {
		out = out[:flt.Limit]
	}
	return out, nil
}

func (f *fakeService) Destroy(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.live(id)
	if err != nil {
		return err
	}
	sb.State = sandbox.StateDestroyed
	delete(f.files, id)
	return nil
}

func (f *fakeService) Prune(_ context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id, sb := range f.sandboxes {
		if sb.State.Live() && sb.ExpiresAt.Before(f.now()) {
			sb.State = sandbox.StateDestroyed
			delete(f.files, id)
			n++
		}
	}
	return n, nil
}

func (f *fakeService) Extend(_ context.Context, id string, ttl time.Duration) (*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.live(id)
	if err != nil {
		return nil, err
	}
	if ttl > f.maxTTL {
		return nil, errs.New(errs.Limit, "ttl %s exceeds max_ttl %s", ttl, f.maxTTL)
	}
	sb.ExpiresAt = f.now().Add(ttl)
	cp := *sb
	return &cp, nil
}

func (f *fakeService) Logs(_ context.Context, id string, lines int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.live(id); err != nil {
		return nil, err
	}
	all := []string{"agent started", "agent ready"}
	if lines < len(all) {
		all = all[len(all)-lines:]
	}
	return all, nil
}

func (f *fakeService) Stats(_ context.Context, id string) (sandbox.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.live(id)
	if err != nil {
		return sandbox.Stats{}, err
	}
	if sb.Metadata["stats"] != "yes" {
		return sandbox.Stats{}, nil
	}
	return sandbox.Stats{Supported: true, Stats: provider.Stats{CPUPercent: 1.5, MemBytes: 1 << 20, MemLimitBytes: 512 << 20}}, nil
}

// Exec interprets a tiny command language: "echo WORDS", "warn WORDS"
// (stderr), "exit N", "sleep DURATION", "boom" (an unclassified error), plus
// scripted commands. In argv mode the command is the program name.
func (f *fakeService) Exec(ctx context.Context, id string, req sandbox.ExecRequest, stdout, stderr io.Writer) (sandbox.ExecResult, error) {
	f.mu.Lock()
	_, err := f.live(id)
	script := f.scripts[req.Command]
	f.mu.Unlock()
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	if req.Mode == sandbox.ModeArgv && req.Command == "" {
		return sandbox.ExecResult{}, errs.New(errs.Invalid, "argv mode requires a command")
	}
	if req.Timeout < 0 {
		return sandbox.ExecResult{}, errs.New(errs.Invalid, "timeout must not be negative")
	}
	if script != nil {
		return script(ctx, stdout, stderr)
	}
	start := time.Now()
	words := strings.Fields(req.Command)
	if req.Mode == sandbox.ModeArgv {
		words = append([]string{req.Command}, req.Args...)
	} else {
		words = append(words, req.Args...)
	}
	res := sandbox.ExecResult{}
	switch words[0] {
	case "echo":
		_, _ = io.WriteString(stdout, strings.Join(words[1:], " ")+"\n")
	case "warn":
		_, _ = io.WriteString(stderr, strings.Join(words[1:], " ")+"\n")
	case "exit":
		res.ExitCode, _ = strconv.Atoi(words[1])
	case "sleep":
		d, _ := time.ParseDuration(words[1])
		timeout := req.Timeout
		if timeout == 0 {
			timeout = time.Minute
		}
		t := time.NewTimer(min(d, timeout))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return sandbox.ExecResult{}, errs.Wrap(errs.Internal, ctx.Err(), "exec canceled")
		case <-t.C:
		}
		if d > timeout {
			res.ExitCode, res.TimedOut = -1, true
		}
	case "boom":
		return sandbox.ExecResult{}, errors.New("dial unix /var/lib/stacyvm/secret.sock: connection refused")
	default:
		_, _ = io.WriteString(stderr, "sh: "+words[0]+": not found\n")
		res.ExitCode = 127
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (f *fakeService) Providers(_ context.Context) ([]sandbox.ProviderInfo, error) {
	return []sandbox.ProviderInfo{{
		Name: "mock", Default: true, Healthy: true, LatencyMS: 1, LastChecked: f.now(),
		Capabilities: provider.Capabilities{Isolation: provider.IsolationNone, NetworkModes: []string{"none"}, Features: []string{"exec", "files"}},
	}}, nil
}

func (f *fakeService) TestProviders(_ context.Context) (map[string]bool, error) {
	return map[string]bool{"mock": true}, nil
}

func (f *fakeService) Ready(_ context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

var _ Service = (*fakeService)(nil)

func errUnavailable(msg string) error { return errs.New(errs.Unavailable, "%s", msg) }

// Short names for scripted command signatures in tests.
type (
	ctxT    = context.Context
	writerT = io.Writer
	resT    = sandbox.ExecResult
)

// WarmPools reports one pool whose fill is the number of sandboxes the fake
// has not handed out (it has no pool of its own: empty unless warm is set).
func (f *fakeService) WarmPools(context.Context) ([]sandbox.WarmPoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []sandbox.WarmPoolInfo{}
	if f.warm > 0 {
		out = append(out, sandbox.WarmPoolInfo{Image: "stacyvm/busybox", Provider: "docker", Size: f.warm, Ready: f.warm})
	}
	return out, nil
}
