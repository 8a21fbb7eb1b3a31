//go:build !linux

package main

import (
	"fmt"
	"os"
)

// runInit is only implemented on Linux, where sandboxes run.
func runInit([]string) int {
	fmt.Fprintln(os.Stderr, "stacyvm-agent: PID 1 mode needs Linux")
	return 1
}
