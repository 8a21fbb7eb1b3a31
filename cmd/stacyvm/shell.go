package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

func newShellCmd(g *globals) *cobra.Command {
	var (
		workdir string
		env     []string
		tty     string
	)
	cmd := &cobra.Command{
		Use:   "shell ID [-- COMMAND [ARG...]]",
		Short: "Open an interactive shell (a PTY) in a sandbox",
		Long: "Open an interactive terminal in a sandbox over the WebSocket exec route:\n" +
			"/bin/sh by default, or COMMAND with ARGs (run directly). With a terminal on\n" +
			"stdin the local terminal is put in raw mode and its size follows the window;\n" +
			"without one (a pipe) the input is sent as is and no PTY is allocated unless\n" +
			"--tty=always. The CLI exits with the remote command's exit code.",
		Example: "  stacyvm shell sb-1a2b3c4d5e6f\n" +
			"  stacyvm shell sb-1a2b3c4d5e6f -- python3\n" +
			"  echo 'ls /; exit 3' | stacyvm shell sb-1a2b3c4d5e6f",
		Args: withArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			envMap, err := parseKV("env", env)
			if err != nil {
				return err
			}
			in, isFile := g.env.stdin.(*os.File)
			term := isFile && isTerminal(in)
			var wantTTY bool
			switch tty {
			case "auto":
				wantTTY = term
			case "always":
				wantTTY = true
			case "never":
			default:
				return usagef("--tty must be auto, always or never, got %q", tty)
			}
			req := apiclient.ExecWSRequest{Command: "/bin/sh", Mode: apiclient.ModeArgv, Env: envMap, Workdir: workdir, TTY: wantTTY}
			if len(args) > 1 {
				req.Command, req.Args = args[1], args[2:]
			}
			if wantTTY {
				req.Cols, req.Rows = 80, 24
				if c, r, ok := termSize(g.env.stdout); ok {
					req.Cols, req.Rows = c, r
				}
			}
			ctx := cmd.Context()
			x, err := g.client().OpenExecWS(ctx, args[0], req)
			if err != nil {
				return err
			}
			defer x.Close()
			if term && wantTTY {
				restore, err := makeRaw(in)
				if err != nil {
					return err
				}
				defer restore()
				stopResize := followResize(ctx, x, g.env.stdout)
				defer stopResize()
			}
			code, err := x.Run(ctx, g.env.stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCodeError{code: processExitCode(code)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&workdir, "workdir", "w", "", "working directory inside the sandbox")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&tty, "tty", "auto", "allocate a PTY: auto (when stdin is a terminal), always or never")
	return cmd
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// termSize is the window size of w when it is a terminal.
func termSize(w io.Writer) (cols, rows int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile {
		return 0, 0, false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 || ws.Row == 0 {
		return 0, 0, false
	}
	return int(ws.Col), int(ws.Row), true
}

// makeRaw puts the terminal in raw mode (as cfmakeraw does) and returns
// the function that restores it.
func makeRaw(f *os.File) (func(), error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// followResize sends the window size to the session on every SIGWINCH
// until the returned function is called.
func followResize(ctx context.Context, x *apiclient.ExecWS, out io.Writer) func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				if c, r, ok := termSize(out); ok {
					_ = x.Resize(ctx, c, r)
				}
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
