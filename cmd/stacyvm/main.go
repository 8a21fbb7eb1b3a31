// Command stacyvm is the StacyVM server (stacyvm serve) and its CLI client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
// These are the only package-level variables, written by the linker only.
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin:   os.Stdin,
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		environ: os.Environ(),
		build:   buildInfo{Version: version, Commit: commit},
	})
	stop()
	os.Exit(code)
}
