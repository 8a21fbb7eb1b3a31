package main

import (
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

func newLsCmd(g *globals) *cobra.Command {
	var opts apiclient.ListOptions
	cmd := &cobra.Command{
		Use:   "ls [ID[:PATH]]",
		Short: "List files in a sandbox (without an argument: list sandboxes)",
		Long: "List the directory PATH (default /) inside sandbox ID, or describe PATH\n" +
			"when it is a file. Without an argument, ls lists sandboxes like `list`.",
		Example: "  stacyvm ls sb-1a2b3c4d5e6f:/work\n" +
			"  stacyvm ls sb-1a2b3c4d5e6f -o json",
		Args: withArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			if len(args) == 0 {
				sbs, err := c.List(cmd.Context(), opts)
				if err != nil {
					return err
				}
				return printSandboxes(cmd.OutOrStdout(), g.jsonOutput(), sbs...)
			}
			id, p, ok := remotePath(args[0])
			if !ok {
				id, p = args[0], "/"
			}
			if !strings.HasPrefix(p, "/") {
				return usagef("sandbox path must be absolute, got %q", args[0])
			}
			fi, err := c.StatFile(cmd.Context(), id, p)
			if err != nil {
				return err
			}
			fis := []apiclient.FileInfo{*fi}
			if fi.IsDir {
				if fis, err = c.ListFiles(cmd.Context(), id, p); err != nil {
					return err
				}
			}
			if g.jsonOutput() {
				return printJSON(cmd.OutOrStdout(), fis)
			}
			return printFiles(cmd.OutOrStdout(), fis)
		},
	}
	cmd.Flags().StringVar(&opts.State, "state", "", "without ID: only sandboxes in this state")
	cmd.Flags().StringVar(&opts.OwnerID, "owner", "", "without ID: only sandboxes of this owner")
	return cmd
}

// printFiles writes a directory listing as a table.
func printFiles(w io.Writer, fis []apiclient.FileInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODE\tSIZE\tMODIFIED\tNAME")
	for _, f := range fis {
		name := path.Base(f.Path)
		mode := "-" + f.Mode
		if f.IsDir {
			name += "/"
			mode = "d" + f.Mode
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", mode, f.Size, formatTime(f.ModTime), name)
	}
	return tw.Flush()
}
