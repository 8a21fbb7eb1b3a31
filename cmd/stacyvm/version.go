package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo identifies this binary.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// complete fills Commit from the embedded VCS info when -ldflags did not set
// it, and Go from the runtime.
func (b buildInfo) complete() buildInfo {
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					b.Commit = s.Value
				}
			}
		}
	}
	b.Go = runtime.Version()
	return b
}

func versionText(b buildInfo) string {
	b = b.complete()
	return fmt.Sprintf("stacyvm %s\ncommit: %s\ngo: %s\n", b.Version, b.Commit, b.Go)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.jsonOutput() {
				return printJSON(cmd.OutOrStdout(), g.env.build.complete())
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(g.env.build))
			return err
		},
	}
}
