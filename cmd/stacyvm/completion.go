package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// newCompletionCmd is cobra's completion command, with the install steps
// for each shell in its help.
func newCompletionCmd(root *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: "Print the completion script for a shell. Sandbox ids complete from the server.\n\n" +
			"  bash:       source <(stacyvm completion bash)\n" +
			"  zsh:        stacyvm completion zsh > \"${fpath[1]}/_stacyvm\"\n" +
			"  fish:       stacyvm completion fish > ~/.config/fish/completions/stacyvm.fish\n" +
			"  powershell: stacyvm completion powershell | Out-String | Invoke-Expression",
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      withArgs(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			default:
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
	return cmd
}

// completeSandboxIDs completes the first argument (or the ID of ID:PATH)
// from the server's sandboxes; other arguments complete as files.
func completeSandboxIDs(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if strings.Contains(toComplete, ":") || strings.HasPrefix(toComplete, ".") || strings.HasPrefix(toComplete, "/") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		defer cancel()
		sbs, err := g.client().List(ctx, apiclient.ListOptions{State: "running"})
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var out []cobra.Completion
		for _, sb := range sbs {
			if strings.HasPrefix(sb.ID, toComplete) {
				out = append(out, cobra.CompletionWithDesc(sb.ID, sb.Image))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// addExtraCommands registers the commands of this file's siblings (cp, ls,
// logs, templates, mcp, shell, completion) and sandbox-id completion on every
// command whose first argument is a sandbox id.
func addExtraCommands(root *cobra.Command, g *globals) {
	root.CompletionOptions.DisableDefaultCmd = true // replaced by newCompletionCmd
	root.AddCommand(newCpCmd(g), newLsCmd(g), newLogsCmd(g), newTemplatesCmd(g), newMCPCmd(g), newShellCmd(g), newCompletionCmd(root))
	for _, c := range root.Commands() {
		switch c.Name() {
		case "get", "kill", "extend", "exec", "logs", "ls", "cp", "shell":
			if c.ValidArgsFunction == nil {
				c.ValidArgsFunction = completeSandboxIDs(g)
			}
		}
	}
}
