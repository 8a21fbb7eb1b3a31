// Command stacyvm-bench starts its own stacyvm server against the real
// Docker engine and measures it against raw Docker (and optionally a peer
// StacyVM server) in one interleaved run; see bench.Main and `make bench`.
package main

import (
	"os"

	"github.com/stacyvm/stacyvm/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
