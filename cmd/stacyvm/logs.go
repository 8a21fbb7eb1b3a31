package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var lines int
	cmd := &cobra.Command{
		Use:     "logs ID",
		Short:   "Print a sandbox's recent log lines",
		Example: "  stacyvm logs sb-1a2b3c4d5e6f --lines 50",
		Args:    withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return usagef("--lines must be 0 or more, got %d", lines)
			}
			out, err := g.client().Logs(cmd.Context(), args[0], lines)
			if err != nil {
				return err
			}
			if g.jsonOutput() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			for _, l := range out {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "how many of the last lines (0: the server's default)")
	return cmd
}
