#!/usr/bin/env bash
# Builds StacyVM's base images locally, without any registry:
#   stacyvm/busybox  from Debian's busybox-static (every applet linked)
#   stacyvm/python   from debootstrap (bookworm minbase) + python3
# Idempotent: an image that exists with the current recipe version is kept.
# Usage: scripts/build-images.sh [busybox] [python]   (default: both)
# Env: STACYVM_IMAGE_MIRROR (apt mirror for debootstrap; default: this host's),
#      STACYVM_IMAGE_FORCE=1 (rebuild even when present).
set -euo pipefail

RECIPE=1   # bump when a recipe below changes, so old images are rebuilt
log() { printf '[images] %s\n' "$*" >&2; }

have_image() {
  [ "${STACYVM_IMAGE_FORCE:-0}" = 1 ] && return 1
  local v
  v=$(docker image inspect --format '{{ index .Config.Labels "stacyvm.recipe" }}' "$1" 2>/dev/null) || return 1
  [ "$v" = "$RECIPE" ]
}

mirror() {
  if [ -n "${STACYVM_IMAGE_MIRROR:-}" ]; then echo "$STACYVM_IMAGE_MIRROR"; return; fi
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

build_busybox() {
  local img=stacyvm/busybox:latest
  if have_image "$img"; then log "$img present"; return; fi
  [ -x /bin/busybox ] || { log "busybox-static missing: apt-get install busybox-static"; exit 1; }
  local r; r=$(mktemp -d)
  trap 'rm -rf "$r"' RETURN
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,workspace}
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  chroot "$r" /bin/busybox --install -s
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  tar -C "$r" -c . | docker import \
    -c 'CMD ["/bin/sh"]' -c 'WORKDIR /workspace' \
    -c "LABEL stacyvm.recipe=$RECIPE" -c 'LABEL stacyvm.image=busybox' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$img" >/dev/null
  log "$img built"
}

build_python() {
  local img=stacyvm/python:latest
  if have_image "$img"; then log "$img present"; return; fi
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }
  local r; r=$(mktemp -d /var/tmp/stacyvm-python.XXXXXX)
  trap 'rm -rf "$r"' RETURN
  local t0=$SECONDS
  log "debootstrap bookworm + python3 from $(mirror) (about 2 minutes)"
  debootstrap --variant=minbase --include=python3 bookworm "$r" "$(mirror)" >"$r.log" 2>&1 \
    || { tail -20 "$r.log" >&2; rm -f "$r.log"; exit 1; }
  rm -f "$r.log"
  chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/locale "$r"/var/cache/debconf/*-old
  mkdir -p "$r/workspace"
  tar -C "$r" -c . | docker import \
    -c 'CMD ["/usr/bin/python3"]' -c 'WORKDIR /workspace' \
    -c "LABEL stacyvm.recipe=$RECIPE" -c 'LABEL stacyvm.image=python' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' - "$img" >/dev/null
  log "$img built in $((SECONDS - t0)) s"
}

[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap, chroot)"; exit 1; }
docker info >/dev/null 2>&1 || { log "Docker engine not reachable; run scripts/ci-prepare.sh first"; exit 1; }
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(busybox python)
for t in "${targets[@]}"; do
  case "$t" in
    busybox) build_busybox ;;
    python) build_python ;;
    *) log "unknown image $t (busybox, python)"; exit 2 ;;
  esac
done
