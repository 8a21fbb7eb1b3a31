// Package certify certifies sandbox runtimes on this host: each runtime's
// host checks (binary, daemon, registration, devices), then a live
// conformance subset through a temporary `stacyvm serve` on a loopback
// port (spawn, exec, exit codes, timeout kill, files, destroy), with
// timings and the host's facts. A runtime that is absent is NOT INSTALLED,
// never PASS; any FAIL makes the report fail.
package certify

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Statuses of checks and runtimes (the provider.Check* values).
const (
	Pass         = provider.CheckPass
	Fail         = provider.CheckFail
	NotInstalled = provider.CheckNotInstalled
)

// Names lists the runtimes certify knows, in report order.
func Names() []string {
	return []string{"docker", "gvisor", "kata", "vm", "firecracker", "proot"}
}

// Options configures Run.
type Options struct {
	// Runtimes to certify (from Names); "all" is expanded by the caller.
	Runtimes []string
	// HostChecks returns a runtime's host checks. By convention the first
	// check is the runtime's presence: NOT INSTALLED there means the
	// runtime is absent and no live check runs.
	HostChecks func(ctx context.Context, runtime string) []provider.HostCheck
	// ServerBin is the stacyvm binary started as the temporary server.
	ServerBin string
	// Image is the local image the live checks spawn; default stacyvm/busybox.
	Image string
	// Version is the certifying binary's version, for the report.
	Version string
	// Progress receives one line per step; nil = silent.
	Progress io.Writer
	// Facts gathers host facts; nil = HostFacts.
	Facts func(ctx context.Context) Facts
}

// Report is the outcome of Run.
type Report struct {
	GeneratedAt time.Time       `json:"generated_at"`
	Version     string          `json:"version"`
	Status      string          `json:"status"` // see overall
	Host        Facts           `json:"host"`
	Runtimes    []RuntimeResult `json:"runtimes"`
	DurationMS  int64           `json:"duration_ms"`
}

// RuntimeResult is one runtime's certification.
type RuntimeResult struct {
	Name       string               `json:"name"`
	Status     string               `json:"status"` // PASS, FAIL or NOT INSTALLED
	Isolation  string               `json:"isolation,omitempty"`
	Boundary   *bool                `json:"security_boundary,omitempty"`
	HostChecks []provider.HostCheck `json:"host_checks"`
	Live       []LiveCheck          `json:"live"`
	// Timings are the live medians in milliseconds: spawn, first_exec, exec, destroy.
	Timings map[string]int64 `json:"timings_ms,omitempty"`
}

// LiveCheck is one step of the live conformance subset.
type LiveCheck struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Detail     string `json:"detail,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Failed reports whether the report has any FAIL.
func (r *Report) Failed() bool { return r.Status == Fail }

// Run certifies opts.Runtimes. Its error is for bad options only; runtime
// problems are FAIL results in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Runtimes) == 0 {
		return nil, errs.New(errs.Invalid, "no runtime to certify (want one of %s, or all)", strings.Join(Names(), ", "))
	}
	for _, n := range opts.Runtimes {
		if !slices.Contains(Names(), n) {
			return nil, errs.New(errs.Invalid, "unknown runtime %q (want one of %s, or all)", n, strings.Join(Names(), ", "))
		}
	}
	if opts.HostChecks == nil {
		return nil, errs.New(errs.Invalid, "certify: no host checks")
	}
	if opts.Image == "" {
		opts.Image = "stacyvm/busybox"
	}
	if opts.Facts == nil {
		opts.Facts = HostFacts
	}
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "[certify] "+format+"\n", args...)
		}
	}
	start := time.Now()
	rep := &Report{GeneratedAt: start.UTC(), Version: opts.Version, Host: opts.Facts(ctx)}

	var live []string
	for _, name := range opts.Runtimes {
		progress("%s: host checks", name)
		rr := RuntimeResult{Name: name, HostChecks: opts.HostChecks(ctx, name), Live: []LiveCheck{}}
		rr.Status = hostStatus(rr.HostChecks)
		if rr.Status == Pass {
			live = append(live, name)
		}
		rep.Runtimes = append(rep.Runtimes, rr)
	}
	if len(live) > 0 {
		progress("starting a temporary server for %s", strings.Join(live, ", "))
		srv, err := startServer(ctx, opts.ServerBin, live)
		if err != nil {
			for i := range rep.Runtimes {
				if slices.Contains(live, rep.Runtimes[i].Name) {
					rep.Runtimes[i].Status = Fail
					rep.Runtimes[i].Live = []LiveCheck{{Name: "temporary server", Status: Fail, Detail: err.Error()}}
				}
			}
		} else {
			for i := range rep.Runtimes {
				rr := &rep.Runtimes[i]
				if !slices.Contains(live, rr.Name) {
					continue
				}
				progress("%s: live conformance subset", rr.Name)
				runLive(ctx, srv, opts.Image, rr)
				if slices.ContainsFunc(rr.Live, func(c LiveCheck) bool { return c.Status != Pass }) {
					rr.Status = Fail
				}
			}
			srv.stop()
		}
	}
	rep.Status = overall(rep.Runtimes)
	rep.DurationMS = time.Since(start).Milliseconds()
	return rep, nil
}

// hostStatus is NOT INSTALLED when the first check (the runtime's
// presence) is, FAIL when any check failed, else PASS. Optional features
// reported NOT INSTALLED after the first check do not block the runtime.
func hostStatus(checks []provider.HostCheck) string {
	if len(checks) == 0 {
		return Fail
	}
	if checks[0].Status == NotInstalled {
		return NotInstalled
	}
	for _, c := range checks {
		if c.Status == Fail || (c.Status != Pass && c.Status != NotInstalled) {
			return Fail
		}
	}
	return Pass
}

// overall is FAIL when any runtime failed, PASS when none failed and at
// least one passed, and NOT INSTALLED when none was installed.
func overall(rs []RuntimeResult) string {
	st := NotInstalled
	for _, rr := range rs {
		switch rr.Status {
		case Fail:
			return Fail
		case Pass:
			st = Pass
		}
	}
	return st
}
