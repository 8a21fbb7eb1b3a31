package main

import (
	"fmt"
	"net"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/mcp"
)

func newMCPCmd(g *globals) *cobra.Command {
	var (
		httpAddr string
		ttl      string
	)
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve StacyVM to AI agents over the Model Context Protocol",
		Long: "Serve the Model Context Protocol on stdin/stdout (the default), or on\n" +
			"streamable HTTP at --http ADDR (loopback only). Tools: create_sandbox,\n" +
			"run_command, read_file, write_file, list_files, destroy_sandbox; each\n" +
			"calls the StacyVM server given by --server and --api-key.",
		Example: "  stacyvm mcp --server http://127.0.0.1:7423\n" +
			"  stacyvm mcp --http 127.0.0.1:7424",
		Args: withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDuration("ttl", ttl); err != nil {
				return err
			}
			s := mcp.NewServer(g.client(), mcp.Options{Version: g.env.build.Version, DefaultTTL: ttl})
			if httpAddr == "" {
				return mcp.ServeStdio(cmd.Context(), s)
			}
			return serveMCPHTTP(cmd, httpAddr, s)
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "", "serve streamable HTTP on this loopback address (e.g. 127.0.0.1:7424) instead of stdio")
	cmd.Flags().StringVar(&ttl, "ttl", "30m", "TTL of sandboxes created without one")
	return cmd
}

// serveMCPHTTP serves s on addr, which must be a loopback address: the MCP
// endpoint acts with the CLI's credentials and has no authentication of its
// own. It returns once the command's context ends (SIGTERM, Ctrl-C) and the
// server has shut down.
func serveMCPHTTP(cmd *cobra.Command, addr string, s *sdk.Server) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--http wants HOST:PORT, got %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usagef("--http must be a loopback address (127.0.0.1, ::1 or localhost), got %q", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "stacyvm mcp: serving streamable HTTP on http://%s/mcp\n", l.Addr())
	return mcp.ServeHTTP(cmd.Context(), l, s, mcp.ShutdownGrace)
}
