package certify

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Formats Write accepts.
const (
	FormatText     = "text"
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
)

// Write renders rep in format to w.
func Write(w io.Writer, rep *Report, format string) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case FormatText, "":
		return writeText(w, rep)
	case FormatMarkdown:
		return writeMarkdown(w, rep)
	}
	return errs.New(errs.Invalid, "unknown format %q (want text, json or markdown)", format)
}

func writeText(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "StacyVM runtime certification: %s\n", rep.Status)
	fmt.Fprintf(&b, "  generated %s by stacyvm %s in %.1fs\n", rep.GeneratedAt.Format("2006-01-02 15:04:05Z07:00"), rep.Version, float64(rep.DurationMS)/1000)
	h := rep.Host
	fmt.Fprintf(&b, "  host: %s, kernel %s, %s, %d CPUs, %d MB, /dev/kvm %s, cgroup %s\n", h.OS, h.Kernel, h.Arch, h.CPUs, h.MemoryMB, h.KVM, h.CgroupMode)
	for _, k := range sortedKeys(h.Versions) {
		fmt.Fprintf(&b, "  %s: %s\n", k, h.Versions[k])
	}
	for _, rr := range rep.Runtimes {
		fmt.Fprintf(&b, "\n%-13s %s", rr.Name, rr.Status)
		if rr.Isolation != "" {
			fmt.Fprintf(&b, "  (isolation %s%s)", rr.Isolation, boundaryNote(rr))
		}
		b.WriteString("\n")
		for _, c := range rr.HostChecks {
			fmt.Fprintf(&b, "  host  %-13s %s", c.Status, c.Name)
			if c.Detail != "" {
				fmt.Fprintf(&b, ": %s", c.Detail)
			}
			if c.Remedy != "" && c.Status != Pass {
				fmt.Fprintf(&b, " (fix: %s)", c.Remedy)
			}
			b.WriteString("\n")
		}
		for _, c := range rr.Live {
			fmt.Fprintf(&b, "  live  %-13s %s (%d ms)", c.Status, c.Name, c.DurationMS)
			if c.Detail != "" {
				fmt.Fprintf(&b, ": %s", c.Detail)
			}
			b.WriteString("\n")
		}
		if len(rr.Timings) > 0 {
			fmt.Fprintf(&b, "  timings: %s\n", timingText(rr.Timings))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Runtime certification report\n\n")
	fmt.Fprintf(&b, "Overall: **%s** · generated %s by `stacyvm %s` in %.1f s\n\n", rep.Status, rep.GeneratedAt.Format("2006-01-02 15:04 UTC"), rep.Version, float64(rep.DurationMS)/1000)
	h := rep.Host
	b.WriteString("## Host\n\n| fact | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| OS | %s |\n| kernel | %s |\n| arch | %s |\n| CPUs | %d |\n| memory | %d MB |\n| /dev/kvm | %s |\n| cgroups | %s |\n",
		md(h.OS), md(h.Kernel), h.Arch, h.CPUs, h.MemoryMB, md(h.KVM), md(h.CgroupMode))
	if h.LoadAverage != "" {
		fmt.Fprintf(&b, "| load average | %s |\n", h.LoadAverage)
	}
	for _, k := range sortedKeys(h.Versions) {
		fmt.Fprintf(&b, "| %s | %s |\n", k, md(h.Versions[k]))
	}
	b.WriteString("\n## Summary\n\n| runtime | result | isolation | spawn | first exec | exec (median) | destroy |\n|---|---|---|---|---|---|---|\n")
	for _, rr := range rep.Runtimes {
		iso := rr.Isolation
		if iso != "" {
			iso += boundaryNote(rr)
		}
		fmt.Fprintf(&b, "| %s | **%s** | %s | %s | %s | %s | %s |\n", rr.Name, rr.Status, md(iso),
			ms(rr.Timings, "spawn"), ms(rr.Timings, "first_exec"), ms(rr.Timings, "exec"), ms(rr.Timings, "destroy"))
	}
	for _, rr := range rep.Runtimes {
		fmt.Fprintf(&b, "\n## %s: %s\n\n| check | result | detail |\n|---|---|---|\n", rr.Name, rr.Status)
		for _, c := range rr.HostChecks {
			d := c.Detail
			if c.Remedy != "" && c.Status != Pass {
				d += " (fix: " + c.Remedy + ")"
			}
			fmt.Fprintf(&b, "| host: %s | %s | %s |\n", md(c.Name), c.Status, md(d))
		}
		for _, c := range rr.Live {
			fmt.Fprintf(&b, "| live: %s | %s | %s (%d ms) |\n", md(c.Name), c.Status, md(c.Detail), c.DurationMS)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func boundaryNote(rr RuntimeResult) string {
	if rr.Boundary != nil && !*rr.Boundary {
		return ", NOT a security boundary"
	}
	return ""
}

func timingText(t map[string]int64) string {
	var parts []string
	for _, k := range []string{"spawn", "first_exec", "exec", "destroy"} {
		if v, ok := t[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d ms", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

func ms(t map[string]int64, k string) string {
	if v, ok := t[k]; ok {
		return fmt.Sprintf("%d ms", v)
	}
	return "–"
}

// md escapes table cell text.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
