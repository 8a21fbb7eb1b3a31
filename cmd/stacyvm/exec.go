package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

func newExecCmd(g *globals) *cobra.Command {
	var (
		shell   bool
		workdir string
		timeout string
		env     []string
	)
	cmd := &cobra.Command{
		Use:   "exec ID -- COMMAND [ARG...]",
		Short: "Run a command in a sandbox; exits with the command's exit code",
		Long: "Run a command in a sandbox, streaming its stdout and stderr live.\n\n" +
			"By default COMMAND and ARGs are executed directly (argv mode, no shell).\n" +
			"With --shell they are joined with spaces and run by /bin/sh -c.\n" +
			"The CLI exits with the command's exit code.",
		Example: "  stacyvm exec sb-1a2b3c4d5e6f -- ls -la /\n" +
			"  stacyvm exec sb-1a2b3c4d5e6f --shell -- 'echo $HOME | wc -c'",
		Args: withArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDuration("timeout", timeout); err != nil {
				return err
			}
			envMap, err := parseKV("env", env)
			if err != nil {
				return err
			}
			id, argv := args[0], args[1:]
			req := apiclient.ExecRequest{Env: envMap, Workdir: workdir, Timeout: timeout}
			if shell {
				req.Mode, req.Command = apiclient.ModeShell, strings.Join(argv, " ")
			} else {
				req.Mode, req.Command, req.Args = apiclient.ModeArgv, argv[0], argv[1:]
			}
			c := g.client()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()

			var code int
			if g.jsonOutput() {
				res, err := c.Exec(cmd.Context(), id, req)
				if err != nil {
					return err
				}
				if err := printJSON(out, res); err != nil {
					return err
				}
				code = res.ExitCode
			} else {
				code, err = c.ExecStream(cmd.Context(), id, req, func(ch apiclient.ExecChunk) error {
					w := out
					if ch.Stream == apiclient.StreamStderr {
						w = errOut
					}
					_, err := io.WriteString(w, ch.Data)
					return err
				})
				if err != nil {
					return err
				}
			}
			if code != 0 {
				return exitCodeError{code: processExitCode(code)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&shell, "shell", false, "run the arguments as one string through /bin/sh -c")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory inside the sandbox")
	f.StringVar(&timeout, "timeout", "", "kill the command after this long, e.g. 30s (default: the server's)")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	return cmd
}

// processExitCode maps a remote exit code to one a process can return:
// codes outside 1..255 (e.g. -1 for "killed by a signal") become 1, so a
// failure never turns into success.
func processExitCode(code int) int {
	if code < 1 || code > 255 {
		return 1
	}
	return code
}
