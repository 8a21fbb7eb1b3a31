package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Exit codes of the CLI itself; exec passes the command's own code through.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

const defaultServer = "http://127.0.0.1:7423"

// env is everything the process gives the CLI, so tests can run it in-process.
type env struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string // KEY=VALUE, as os.Environ
	build   buildInfo
}

// getenv looks name up in e.environ.
func (e env) getenv(name string) string {
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// globals are the root's persistent flags, shared by every subcommand.
type globals struct {
	env        env
	server     string
	apiKey     string
	output     string
	configFile string
}

// client builds an API client from the flags.
func (g *globals) client() *apiclient.Client {
	return apiclient.New(g.server, g.apiKey, apiclient.WithUserAgent("stacyvm-cli/"+g.env.build.Version))
}

// jsonOutput reports whether --output json was chosen.
func (g *globals) jsonOutput() bool { return g.output == "json" }

// usageError marks errors caused by a wrong command line (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCodeError ends the CLI with code without printing anything (exec).
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// withArgs wraps a cobra positional-args validator so its errors are usage
// errors.
func withArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// newRootCmd builds the whole command tree.
func newRootCmd(e env) *cobra.Command {
	g := &globals{env: e}
	root := &cobra.Command{
		Use:           "stacyvm",
		Short:         "StacyVM: self-hosted sandboxes for AI agents",
		Long:          "StacyVM runs isolated sandboxes for AI agents.\n\n`stacyvm serve` starts the server; the other commands talk to a running server.",
		Version:       e.build.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("server") {
				if v := e.getenv("STACYVM_SERVER"); v != "" {
					g.server = v
				}
			}
			if !cmd.Flags().Changed("api-key") {
				g.apiKey = e.getenv("STACYVM_API_KEY")
			}
			if g.output != "table" && g.output != "json" {
				return usagef("--output must be table or json, got %q", g.output)
			}
			u, err := url.Parse(g.server)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--server must be an http(s) URL, got %q", g.server)
			}
			return nil
		},
	}
	root.SetVersionTemplate(versionText(e.build))
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", defaultServer, "server URL (env STACYVM_SERVER)")
	pf.StringVar(&g.apiKey, "api-key", "", "API key sent as X-API-Key (env STACYVM_API_KEY)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.configFile, "config", "", "config file for serve (default ./stacyvm.yaml, then ~/.stacyvm/config.yaml)")

	root.AddCommand(
		newServeCmd(g), newWorkerCmd(g), // worker: docs/worker-protocol.md
		newSpawnCmd(g),
		newListCmd(g),
		newGetCmd(g),
		newKillCmd(g),
		newExtendCmd(g),
		newExecCmd(g),
		newVersionCmd(g),
		newConfigCmd(g), newDoctorCmd(g), newDBCmd(g), newUpgradeCmd(g), newSupportCmd(g), // operations (docs/operations.md)
		newCertifyCmd(g),
		newBuildImageCmd(g), // microVM root disks (docs/vm.md)
	)
	addExtraCommands(root, g)
	return root
}

// run executes the CLI and returns the process exit code. Errors are one
// line on stderr: "error: CODE: message" for API errors.
func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "error: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(e.stderr, "error: "+oneLine(err, describe(err)))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", root.Name())
		return exitUsage
	}
	return exitError
}

// describe turns err into the text after "error: ".
func describe(err error) string {
	var ae *apiclient.APIError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Sprintf("UNAVAILABLE: cannot reach the server at %s: %v", serverOf(ue), ue.Err)
		}
	}
	return err.Error()
}

func serverOf(ue *url.Error) string {
	u, err := url.Parse(ue.URL)
	if err != nil {
		return ue.URL
	}
	return u.Scheme + "://" + u.Host
}

// oneLine folds a multi-line message so every error is exactly one line,
// except local configuration errors, whose problem list stays readable.
func oneLine(err error, s string) string {
	if errs.ClassOf(err) == errs.Invalid {
		return strings.TrimSpace(s)
	}
	return strings.Join(strings.Fields(s), " ")
}
