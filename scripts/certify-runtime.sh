#!/usr/bin/env bash
# Certifies sandbox runtimes on this host: host checks, then a live conformance
# subset through a temporary server (docs/runtime-certification.md).
#
#   scripts/certify-runtime.sh [RUNTIME|all] [stacyvm certify runtime flags...]
#
# Defaults to all runtimes and a markdown report on stdout. Uses bin/stacyvm
# (built with `make build` when missing) or $STACYVM_BIN. Exits 1 when anything
# FAILs; NOT INSTALLED runtimes do not fail.
set -euo pipefail
cd "$(dirname "$0")/.."

runtime=${1:-all}
[ $# -gt 0 ] && shift
bin=${STACYVM_BIN:-bin/stacyvm}
if [ ! -x "$bin" ]; then
  make build >&2
fi
has_format=0
for a in "$@"; do
  case "$a" in --format|--format=*) has_format=1 ;; esac
done
if [ "$has_format" = 0 ]; then
  set -- --format markdown "$@"
fi
exec "$bin" certify runtime "$runtime" "$@"
