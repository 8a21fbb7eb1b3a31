package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// parseKV turns repeated K=V flag values into a map.
func parseKV(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("--%s wants KEY=VALUE, got %q", flag, p)
		}
		m[k] = v
	}
	return m, nil
}

// checkDuration rejects a malformed Go duration before it reaches the server.
func checkDuration(flag, v string) error {
	if v == "" {
		return nil
	}
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		return usagef("--%s must be a duration like 30s, 10m or 1h, got %q", flag, v)
	}
	return nil
}

func newSpawnCmd(g *globals) *cobra.Command {
	var (
		req       apiclient.SpawnRequest
		env, meta []string
	)
	cmd := &cobra.Command{
		Use:   "spawn",
		Short: "Create a sandbox",
		Example: "  stacyvm spawn --image stacyvm/busybox --ttl 1h\n" +
			"  stacyvm spawn --env FOO=bar --metadata task=42 -o json",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if err = checkDuration("ttl", req.TTL); err != nil {
				return err
			}
			if req.Network != "" && req.Network != "none" && req.Network != "bridge" && req.Network != "allowlist" {
				return usagef("--network must be none, bridge or allowlist, got %q", req.Network)
			}
			if req.Env, err = parseKV("env", env); err != nil {
				return err
			}
			if req.Metadata, err = parseKV("metadata", meta); err != nil {
				return err
			}
			sb, err := g.client().Spawn(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printSandbox(cmd.OutOrStdout(), g.jsonOutput(), sb)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Image, "image", "", "image (default: the server's defaults.image)")
	f.StringVar(&req.TTL, "ttl", "", "time to live, e.g. 30m (default: the server's defaults.ttl)")
	f.IntVar(&req.MemoryMB, "memory", 0, "memory in MiB")
	f.IntVar(&req.VCPUs, "vcpus", 0, "virtual CPUs")
	f.StringVar(&req.Provider, "provider", "", "provider (default: the server's default provider)")
	f.StringVar(&req.Network, "network", "", "network: none, bridge or allowlist")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&meta, "metadata", nil, "metadata KEY=VALUE (repeatable)")
	return cmd
}

func newListCmd(g *globals) *cobra.Command {
	var opts apiclient.ListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sandboxes, newest first",
		Args:  withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sbs, err := g.client().List(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return printSandboxes(cmd.OutOrStdout(), g.jsonOutput(), sbs...)
		},
	}
	cmd.Flags().StringVar(&opts.State, "state", "", "only sandboxes in this state")
	cmd.Flags().StringVar(&opts.OwnerID, "owner", "", "only sandboxes of this owner")
	return cmd
}

func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one sandbox",
		Args:  withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, err := g.client().Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printSandbox(cmd.OutOrStdout(), g.jsonOutput(), sb)
		},
	}
}

func newKillCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "kill ID...",
		Aliases: []string{"destroy", "rm"},
		Short:   "Destroy sandboxes",
		Args:    withArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			type result struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Error  string `json:"error,omitempty"`
			}
			c := g.client()
			var results []result
			failed := 0
			for _, id := range args {
				err := c.Destroy(cmd.Context(), id)
				switch {
				case err == nil:
					results = append(results, result{ID: id, Status: "destroyed"})
					if !g.jsonOutput() {
						fmt.Fprintf(cmd.OutOrStdout(), "%s destroyed\n", id)
					}
				case len(args) == 1:
					return err
				default:
					failed++
					results = append(results, result{ID: id, Status: "error", Error: describe(err)})
					if !g.jsonOutput() {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", id, describe(err))
					}
				}
			}
			if g.jsonOutput() {
				if err := printJSON(cmd.OutOrStdout(), results); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d sandboxes not destroyed", failed, len(args))
			}
			return nil
		},
	}
}

func newExtendCmd(g *globals) *cobra.Command {
	var ttl string
	cmd := &cobra.Command{
		Use:   "extend ID",
		Short: "Set a sandbox's expiry to now + --ttl",
		Args:  withArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl == "" {
				return usagef("--ttl is required")
			}
			if err := checkDuration("ttl", ttl); err != nil {
				return err
			}
			sb, err := g.client().Extend(cmd.Context(), args[0], ttl)
			if err != nil {
				return err
			}
			return printSandbox(cmd.OutOrStdout(), g.jsonOutput(), sb)
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "new time to live from now, e.g. 1h")
	return cmd
}
