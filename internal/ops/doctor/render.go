package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Text renders r for a terminal: one line per check, the remedy under each
// failure or warning.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintf(w, "stacyvm doctor%s: %s\n", prodSuffix(r.Production), orDefault(r.Config, "(defaults and environment only)"))
	section := ""
	for _, c := range r.Checks {
		if c.Section != section {
			section = c.Section
			fmt.Fprintf(w, "\n[%s]\n", section)
		}
		line := fmt.Sprintf("  %-4s %s", c.Status, c.Name)
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(w, line)
		if c.Remedy != "" && c.Status != Pass {
			fmt.Fprintf(w, "       fix: %s\n", c.Remedy)
		}
	}
	fmt.Fprintf(w, "\n%s: %d failure(s), %d warning(s), %d check(s)\n", verdict(r), r.Failures, r.Warnings, len(r.Checks))
}

// Markdown renders r as a table (for issues and support tickets).
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "## stacyvm doctor%s\n\nConfig: `%s`\n\n**%s**: %d failure(s), %d warning(s)\n\n",
		prodSuffix(r.Production), orDefault(r.Config, "(defaults and environment only)"), verdict(r), r.Failures, r.Warnings)
	fmt.Fprintln(w, "| Section | Check | Status | Detail | Remediation |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", md(c.Section), md(c.Name), c.Status, md(c.Detail), md(c.Remedy))
	}
}

// JSON renders r as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func md(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

func verdict(r *Report) string {
	if r.Passed {
		return "PASS"
	}
	return "FAIL"
}

func prodSuffix(p bool) string {
	if p {
		return " --production"
	}
	return ""
}
