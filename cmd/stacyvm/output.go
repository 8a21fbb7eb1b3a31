package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printSandboxes writes sandboxes as a table (or JSON when asJSON).
func printSandboxes(w io.Writer, asJSON bool, sbs ...apiclient.Sandbox) error {
	if asJSON {
		return printJSON(w, sbs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPROVIDER\tIMAGE\tEXPIRES")
	for _, sb := range sbs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sb.ID, sb.State, sb.Provider, sb.Image, formatTime(sb.ExpiresAt))
	}
	return tw.Flush()
}

// printSandbox writes one sandbox: a one-row table, or a JSON object.
func printSandbox(w io.Writer, asJSON bool, sb *apiclient.Sandbox) error {
	if asJSON {
		return printJSON(w, sb)
	}
	return printSandboxes(w, false, *sb)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}
