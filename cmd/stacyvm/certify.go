package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/app"
	"github.com/stacyvm/stacyvm/internal/certify"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
)

func newCertifyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "certify",
		Short: "Certify this host for StacyVM",
		Args:  withArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(newCertifyRuntimeCmd(g), &cobra.Command{
		Use:   "matrix",
		Short: "Print the support matrix (docs/support-matrix.md) from the providers' declared capabilities",
		Args:  withArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), certify.Matrix(app.SupportMatrix()))
			return err
		},
	})
	return c
}

func newCertifyRuntimeCmd(g *globals) *cobra.Command {
	var format, output, image string
	c := &cobra.Command{
		Use:   "runtime <" + strings.Join(certify.Names(), "|") + "|all>",
		Short: "Certify sandbox runtimes: host checks, then a live conformance subset",
		Long: "Runs each runtime's host checks (binary, daemon, registration, /dev/kvm, ...), then\n" +
			"spawns, execs, moves files and destroys a sandbox on every runtime that passed,\n" +
			"through a temporary `stacyvm serve` on a free loopback port with a temporary\n" +
			"data dir. Reports PASS, FAIL or NOT INSTALLED per check, timings and host facts.\n" +
			"Exits 1 when anything FAILs; NOT INSTALLED is never a pass.",
		Args:      withArgs(cobra.ExactArgs(1)),
		ValidArgs: append(certify.Names(), "all"),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := []string{args[0]}
			if args[0] == "all" {
				names = certify.Names()
			} else if !slices.Contains(certify.Names(), args[0]) {
				return usagef("unknown runtime %q: want one of %s or all", args[0], strings.Join(certify.Names(), ", "))
			}
			if format != certify.FormatText && format != certify.FormatJSON && format != certify.FormatMarkdown {
				return usagef("--format must be text, json or markdown, got %q", format)
			}
			cfg, err := config.Load(config.LoadOptions{File: g.configFile, Env: g.env.environ, Home: g.env.getenv("HOME")})
			if err != nil {
				return err
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			rep, err := certify.Run(cmd.Context(), certify.Options{
				Runtimes: names,
				HostChecks: func(ctx context.Context, rt string) []provider.HostCheck {
					return app.RuntimeHostChecks(ctx, cfg, rt)
				},
				ServerBin: bin,
				Image:     image,
				Version:   g.env.build.complete().Version,
				Progress:  cmd.ErrOrStderr(),
			})
			if err != nil {
				return usageError{err}
			}
			var buf bytes.Buffer
			if err := certify.Write(&buf, rep, format); err != nil {
				return err
			}
			if output != "" && output != "-" {
				if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
					return err
				}
			} else if _, err := cmd.OutOrStdout().Write(buf.Bytes()); err != nil {
				return err
			}
			if rep.Failed() {
				return exitCodeError{code: exitError}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&format, "format", certify.FormatText, "report format: text, json or markdown")
	// Shadows the global --output (table|json) for this command: here it
	// names the report file.
	f.StringVar(&output, "output", "", "write the report to this file instead of stdout")
	f.StringVar(&image, "image", "stacyvm/busybox", "local image the live checks spawn")
	return c
}
