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
want=(docker.io busybox-static debootstrap iptables ca-certificates make runsc proot python3 chromium)
# microVM provider (docs/vm.md): QEMU, qemu-img for overlays, mkfs.ext4 for
# root disks, and what scripts/build-vm-assets.sh needs to cut the kernel out.
want+=(qemu-system-x86 qemu-utils e2fsprogs cpio lz4 gzip)
# Postgres store tests (internal/store/postgres, test/e2e): the tests start a
# throwaway server of their own with initdb/pg_ctl, and db pg-backup needs
# pg_dump/pg_restore. The packaged cluster service is not used.
want+=(postgresql)
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

# Node.js and npm for the TypeScript SDK tests (test/sdk). Debian's nodejs
# (18) is enough; a nodesource nodejs already bundles npm, so each is
# installed only when its command is missing.
node_missing=()
command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || node_missing+=(npm)
if [ ${#node_missing[@]} -gt 0 ]; then
  log "installing: ${node_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${node_missing[@]}" >/dev/null
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

# gVisor: register runsc with the engine (docs/decisions/016-gvisor-runtime-entry.md).
# --network=host: the runsc Debian ships cannot start its own netstack on
# kernels >= 6.11 (google/gvisor#10704); with host networking it uses the host
# kernel's stack inside the container's own network namespace, so Docker's
# none and bridge modes both behave. --host-uds=create lets the agent create
# its socket in the bind-mounted host dir. Never --platform=kvm (hangs on
# nested KVM). Merged into daemon.json without touching other keys, then a
# SIGHUP reload (runtimes reload without restarting dockerd).
register_runtime() { # name path args...
  python3 - /etc/docker/daemon.json "$@" <<'PY'
import json, os, sys
path, name, binary, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    cfg = {}
want = {"path": binary}
if args:
    want["runtimeArgs"] = args
runtimes = cfg.setdefault("runtimes", {})
if runtimes.get(name) == want:
    print("unchanged")
    sys.exit(0)
runtimes[name] = want
os.makedirs(os.path.dirname(path), exist_ok=True)
tmp = path + ".stacyvm-tmp"
with open(tmp, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
print("changed")
PY
}
if command -v runsc >/dev/null; then
  if [ "$(register_runtime runsc "$(command -v runsc)" --network=host --host-uds=create)" = changed ]; then
    log "registered the runsc runtime in /etc/docker/daemon.json; reloading dockerd"
    pid=$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd || true)
    [ -n "$pid" ] && kill -HUP "$pid"
    for _ in $(seq 1 50); do docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break; sleep 0.1; done
  fi
  docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' || die "dockerd did not load the runsc runtime; see /var/log/stacyvm-dockerd.log"
  log "gVisor runtime runsc registered"
elif [ "${CI:-}" = true ]; then
  die "runsc is missing and CI=true"
fi

# microVM boot assets (kernel + base initramfs; idempotent, ~5 s when built).
if ! scripts/build-vm-assets.sh "${STACYVM_VM_ASSETS:-/var/lib/stacyvm/vm-assets}"; then
  [ "${CI:-}" = true ] && die "building the microVM assets failed and CI=true"
  log "microVM assets not built: the vm provider stays unavailable"
fi

if [ "$images" = 1 ]; then
  scripts/build-images.sh busybox python
fi
log "ready"
