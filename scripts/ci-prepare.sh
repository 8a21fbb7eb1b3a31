#!/usr/bin/env bash
# Installs and starts what StacyVM needs on a Debian/Ubuntu machine, idempotently:
# the Docker engine (Debian's docker.io), busybox-static and debootstrap for the
# local base images, then builds stacyvm/busybox and stacyvm/python without any
# registry. A second run on a prepared machine takes a few seconds.
#
#   scripts/ci-prepare.sh            everything the server and `make test` need
#   scripts/ci-prepare.sh --no-images   skip the image builds
#
# With CI=true, anything that cannot be provided is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[prepare] %s\n' "$*" >&2; }
die() { printf '[prepare] error: %s\n' "$*" >&2; exit 1; }

images=1
for a in "$@"; do
  case "$a" in
    --no-images) images=0 ;;
    *) die "unknown option $a" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and starts dockerd); e.g. sudo $0"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null \
  || die "this script supports Debian and Ubuntu only; elsewhere install Docker, busybox (static) and debootstrap yourself, then run scripts/build-images.sh"

# Go toolchain (to build the server): the module needs Go >= 1.26.
if ! command -v go >/dev/null; then
  die "Go >= 1.26 is required to build StacyVM (https://go.dev/doc/install); Debian's golang package is too old"
fi
gov=$(go env GOVERSION | sed 's/^go//')
case "$gov" in
  1.2[6-9]*|1.[3-9][0-9]*|[2-9].*) ;;
  *) die "Go $gov is too old: StacyVM needs Go >= 1.26" ;;
esac

# Debian packages, in one apt transaction.
want=(docker.io busybox-static debootstrap iptables ca-certificates make)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages present"
fi

# Docker engine.
if docker info >/dev/null 2>&1; then
  log "docker engine running"
else
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    log "starting docker with systemctl"
    systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    if pgrep -x dockerd >/dev/null; then
      log "dockerd is starting; waiting"
    else
      log "starting dockerd (log: /var/log/stacyvm-dockerd.log)"
      nohup dockerd >/var/log/stacyvm-dockerd.log 2>&1 </dev/null &
    fi
    for _ in $(seq 1 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  docker info >/dev/null 2>&1 || die "the Docker engine did not come up; see /var/log/stacyvm-dockerd.log"
  log "docker engine running ($(docker version --format '{{.Server.Version}}'))"
fi

if [ "$images" = 1 ]; then
  scripts/build-images.sh busybox python
fi
log "ready"
