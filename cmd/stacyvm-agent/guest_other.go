//go:build !linux

package main

import (
	"fmt"
	"os"
)

const guestFlag = "--guest"

// runGuest is only implemented on Linux guests.
func runGuest(string, string) int {
	fmt.Fprintln(os.Stderr, "stacyvm-agent: microVM guest mode needs Linux")
	return 1
}
