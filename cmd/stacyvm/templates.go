package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

func newTemplatesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "templates",
		Aliases: []string{"template", "tpl"},
		Short:   "Manage sandbox templates and spawn from them",
		Args:    withArgs(cobra.NoArgs),
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List templates",
			Args:  withArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				ts, err := g.client().Templates(cmd.Context())
				if err != nil {
					return err
				}
				return printTemplates(cmd.OutOrStdout(), g.jsonOutput(), ts...)
			},
		},
		&cobra.Command{
			Use:   "get NAME",
			Short: "Show one template",
			Args:  withArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				t, err := g.client().Template(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.jsonOutput() {
					return printJSON(cmd.OutOrStdout(), t)
				}
				return printTemplates(cmd.OutOrStdout(), false, *t)
			},
		},
		newTemplateCreateCmd(g),
		&cobra.Command{
			Use:     "delete NAME",
			Aliases: []string{"rm"},
			Short:   "Delete a template",
			Args:    withArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := g.client().DeleteTemplate(cmd.Context(), args[0]); err != nil {
					return err
				}
				if g.jsonOutput() {
					return printJSON(cmd.OutOrStdout(), map[string]string{"name": args[0], "status": "deleted"})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "template %s deleted\n", args[0])
				return nil
			},
		},
		newTemplateSpawnCmd(g),
	)
	return cmd
}

func newTemplateCreateCmd(g *globals) *cobra.Command {
	var (
		t     apiclient.Template
		env   []string
		ttl   string
		setup []string
	)
	cmd := &cobra.Command{
		Use:     "create NAME --image IMAGE",
		Short:   "Create a template",
		Example: "  stacyvm templates create py --image stacyvm/python --ttl 1h --setup 'pip --version'",
		Args:    withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if t.Image == "" {
				return usagef("--image is required")
			}
			if err := checkDuration("ttl", ttl); err != nil {
				return err
			}
			var err error
			if t.Env, err = parseKV("env", env); err != nil {
				return err
			}
			if ttl != "" {
				d, _ := time.ParseDuration(ttl) // checked above
				t.TTLSeconds = int(d.Seconds())
			}
			t.Name, t.Setup = args[0], setup
			out, err := g.client().CreateTemplate(cmd.Context(), t)
			if err != nil {
				return err
			}
			if g.jsonOutput() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			return printTemplates(cmd.OutOrStdout(), false, *out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.Image, "image", "", "image (required)")
	f.StringVar(&t.Description, "description", "", "description")
	f.IntVar(&t.MemoryMB, "memory", 0, "memory in MiB")
	f.Float64Var(&t.CPUCores, "cpus", 0, "CPU cores")
	f.StringVar(&ttl, "ttl", "", "time to live of spawned sandboxes, e.g. 1h")
	f.IntVar(&t.PoolSize, "pool-size", 0, "warm sandboxes kept ready")
	f.StringVar(&t.Provider, "provider", "", "provider")
	f.StringVar(&t.Network, "network", "", "network: none, bridge or allowlist")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&setup, "setup", nil, "setup command run in every new sandbox (repeatable)")
	f.StringArrayVar(&t.AllowedHosts, "allow-host", nil, "host reachable with network allowlist (repeatable)")
	return cmd
}

func newTemplateSpawnCmd(g *globals) *cobra.Command {
	var ttl, provider string
	cmd := &cobra.Command{
		Use:   "spawn NAME",
		Short: "Create a sandbox from a template",
		Args:  withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDuration("ttl", ttl); err != nil {
				return err
			}
			sb, err := g.client().SpawnTemplate(cmd.Context(), args[0], provider, ttl)
			if err != nil {
				return err
			}
			return printSandbox(cmd.OutOrStdout(), g.jsonOutput(), sb)
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "time to live (default: the template's)")
	cmd.Flags().StringVar(&provider, "provider", "", "provider (default: the template's)")
	return cmd
}

func printTemplates(w io.Writer, asJSON bool, ts ...apiclient.Template) error {
	if asJSON {
		return printJSON(w, ts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tIMAGE\tTTL\tPOOL\tDESCRIPTION")
	for _, t := range ts {
		ttl := "-"
		if t.TTLSeconds > 0 {
			ttl = fmt.Sprintf("%ds", t.TTLSeconds)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", t.Name, t.Version, t.Image, ttl, t.PoolSize, strings.ReplaceAll(t.Description, "\n", " "))
	}
	return tw.Flush()
}
