package certify

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

func TestHostStatus(t *testing.T) {
	pass := provider.HostCheck{Name: "a", Status: Pass}
	ni := provider.HostCheck{Name: "b", Status: NotInstalled}
	fail := provider.HostCheck{Name: "c", Status: Fail}
	for _, tc := range []struct {
		checks []provider.HostCheck
		want   string
	}{
		{nil, Fail},
		{[]provider.HostCheck{pass}, Pass},
		{[]provider.HostCheck{ni, ni}, NotInstalled},
		{[]provider.HostCheck{ni, fail}, NotInstalled},
		{[]provider.HostCheck{pass, fail}, Fail},
		{[]provider.HostCheck{pass, ni}, Pass}, // optional feature absent
		{[]provider.HostCheck{{Name: "x", Status: "MAYBE"}}, Fail},
	} {
		if got := hostStatus(tc.checks); got != tc.want {
			t.Errorf("hostStatus(%v) = %s, want %s", tc.checks, got, tc.want)
		}
	}
}

func TestOverall_NotInstalledIsNeverPass(t *testing.T) {
	r := func(s ...string) []RuntimeResult {
		var out []RuntimeResult
		for _, x := range s {
			out = append(out, RuntimeResult{Status: x})
		}
		return out
	}
	for _, tc := range []struct {
		in   []RuntimeResult
		want string
	}{
		{r(NotInstalled), NotInstalled},
		{r(NotInstalled, Pass), Pass},
		{r(Pass, NotInstalled, Fail), Fail},
	} {
		if got := overall(tc.in); got != tc.want {
			t.Errorf("overall = %s, want %s", got, tc.want)
		}
	}
}

func TestRun_BadOptions(t *testing.T) {
	checks := func(context.Context, string) []provider.HostCheck { return nil }
	for name, o := range map[string]Options{
		"NoRuntime":      {HostChecks: checks},
		"UnknownRuntime": {Runtimes: []string{"lxc"}, HostChecks: checks},
		"NoChecks":       {Runtimes: []string{"docker"}},
	} {
		if _, err := Run(context.Background(), o); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("%s: Run = %v, want Invalid", name, err)
		}
	}
}

// TestRun_OnlyAbsentRuntimes: runtimes that are not installed are reported
// as such without starting a server, and the report does not pass.
func TestRun_OnlyAbsentRuntimes(t *testing.T) {
	rep, err := Run(context.Background(), Options{
		Runtimes: []string{"kata", "firecracker"},
		HostChecks: func(_ context.Context, rt string) []provider.HostCheck {
			return []provider.HostCheck{{Name: rt + " binary", Status: NotInstalled, Detail: "not found"}}
		},
		ServerBin: "/nonexistent/stacyvm", // would FAIL if a server were started
		Facts:     func(context.Context) Facts { return Facts{Kernel: "test"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != NotInstalled || rep.Failed() {
		t.Errorf("status = %s, want NOT INSTALLED", rep.Status)
	}
	for _, rr := range rep.Runtimes {
		if rr.Status != NotInstalled || len(rr.Live) != 0 {
			t.Errorf("%s = %s with %d live checks, want NOT INSTALLED and none", rr.Name, rr.Status, len(rr.Live))
		}
	}
}

// TestRun_ServerThatCannotStartFails: a runtime whose host checks pass but
// whose live checks cannot run is FAIL, not PASS.
func TestRun_ServerThatCannotStartFails(t *testing.T) {
	rep, err := Run(context.Background(), Options{
		Runtimes: []string{"docker"},
		HostChecks: func(context.Context, string) []provider.HostCheck {
			return []provider.HostCheck{{Name: "ok", Status: Pass}}
		},
		ServerBin: "/nonexistent/stacyvm",
		Facts:     func(context.Context) Facts { return Facts{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || rep.Runtimes[0].Status != Fail || len(rep.Runtimes[0].Live) != 1 {
		t.Errorf("report = %+v, want FAIL with the server error", rep.Runtimes[0])
	}
}

func TestWrite_Formats(t *testing.T) {
	no := false
	rep := &Report{
		GeneratedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Version: "v1", Status: Fail,
		Host: Facts{OS: "Debian", Kernel: "6.1", Versions: map[string]string{"proot": "5.1.0"}},
		Runtimes: []RuntimeResult{
			{Name: "proot", Status: Pass, Isolation: "userspace", Boundary: &no,
				HostChecks: []provider.HostCheck{{Name: "proot binary", Status: Pass, Detail: "/usr/bin/proot"}},
				Live:       []LiveCheck{{Name: "spawn", Status: Pass, Detail: "sb-1", DurationMS: 40}},
				Timings:    map[string]int64{"spawn": 40}},
			{Name: "kata", Status: NotInstalled, HostChecks: []provider.HostCheck{{Name: "shim", Status: NotInstalled, Detail: "a|b", Remedy: "install"}}},
		},
	}
	for format, want := range map[string][]string{
		FormatText:     {"certification: FAIL", "proot", "NOT a security boundary", "NOT INSTALLED", "fix: install", "spawn 40 ms"},
		FormatMarkdown: {"# Runtime certification report", "| proot | **PASS** | userspace, NOT a security boundary | 40 ms |", `a\|b (fix: install)`, "## kata: NOT INSTALLED"},
		FormatJSON:     {`"status": "FAIL"`, `"security_boundary": false`},
	} {
		var b bytes.Buffer
		if err := Write(&b, rep, format); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s output lacks %q:\n%s", format, w, b.String())
			}
		}
		if format == FormatJSON {
			var back Report
			if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Runtimes[1].Status != NotInstalled {
				t.Errorf("JSON does not round-trip: %v", err)
			}
		}
	}
	if err := Write(&bytes.Buffer{}, rep, "html"); errs.ClassOf(err) != errs.Invalid {
		t.Errorf("Write(html) = %v, want Invalid", err)
	}
}

func TestHostFacts(t *testing.T) {
	f := HostFacts(context.Background())
	if f.Kernel == "" || f.CPUs == 0 || f.Versions["firecracker"] == "" {
		t.Errorf("facts = %+v, want kernel, CPUs and a firecracker entry", f)
	}
}
