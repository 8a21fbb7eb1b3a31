#!/usr/bin/env bash
# Builds the microVM boot assets of the `vm` provider, idempotently:
#   vmlinux          the PVH-bootable ELF kernel extracted from Debian's
#                    linux-image-cloud-amd64 (downloaded with apt-get download
#                    and unpacked with dpkg-deb: never installed as the host kernel)
#   initrd-base.img  busybox-static, the virtio/vsock modules of that same
#                    kernel and an /init that loads them, mounts the rootfs and
#                    hands over to the agent (the provider appends the agent
#                    binary and a per-sandbox config as further cpio archives)
#   assets.json      versions, for host checks and certification
# Usage: scripts/build-vm-assets.sh [DIR]   (default: /var/lib/stacyvm/vm-assets)
# Env: STACYVM_VM_ASSETS_FORCE=1 rebuilds even when present.
# Needs: apt-get, dpkg-deb, lz4, cpio, gzip, busybox-static (scripts/ci-prepare.sh installs them).
set -euo pipefail

RECIPE=3 # bump when the recipe below changes, so old assets are rebuilt
DIR=${1:-/var/lib/stacyvm/vm-assets}
log() { printf '[vm-assets] %s\n' "$*" >&2; }
die() { printf '[vm-assets] error: %s\n' "$*" >&2; exit 1; }

if [ "${STACYVM_VM_ASSETS_FORCE:-0}" != 1 ] && [ -f "$DIR/assets.json" ] && [ -f "$DIR/vmlinux" ] && [ -f "$DIR/initrd-base.img" ] \
  && grep -q "\"recipe\": $RECIPE," "$DIR/assets.json"; then
  log "present in $DIR"
  exit 0
fi
for c in apt-get dpkg-deb lz4 cpio gzip python3; do command -v "$c" >/dev/null || die "$c is missing (scripts/ci-prepare.sh installs it)"; done
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || die "busybox-static is missing"
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || die "/bin/busybox must come from busybox-static (the initramfs has no libc)"

work=$(mktemp -d /var/tmp/stacyvm-vm-assets.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
t0=$SECONDS
log "downloading linux-image-cloud-amd64 (about 27 MB)"
if ! apt-get download -q linux-image-cloud-amd64 >/dev/null 2>&1; then
  log "apt-get download failed; refreshing the package lists once"
  apt-get update -q >/dev/null 2>&1 || true
  apt-get download -q linux-image-cloud-amd64 >/dev/null 2>&1 || die "apt-get download linux-image-cloud-amd64 failed"
fi
meta=$(ls linux-image-cloud-amd64_*.deb)
kpkg=$(dpkg-deb -f "$meta" Depends | sed -n 's/.*\(linux-image-[0-9][^ ,]*\).*/\1/p')
[ -n "$kpkg" ] || die "cannot find the kernel package behind $meta"
apt-get download -q "$kpkg" >/dev/null 2>&1 || die "apt-get download $kpkg failed"
dpkg-deb -x "$kpkg"_*.deb k
kver=$(ls k/lib/modules)
log "kernel $kver"

# The bzImage is LZ4-compressed (CONFIG_KERNEL_LZ4); QEMU's microvm boots the
# inner ELF vmlinux directly through its PVH entry note.
python3 - k/boot/vmlinuz-"$kver" k.lz4 <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\x02\x21\x4c\x18')
if i < 0:
    sys.exit("no LZ4 stream in the kernel image")
open(sys.argv[2], 'wb').write(d[i:])
PY
lz4 -dcq k.lz4 > vmlinux 2>/dev/null || true # trailing data after the frame makes lz4 complain
head -c 4 vmlinux | grep -q $'\x7fELF' || die "extracted kernel is not an ELF file"

# Initramfs: busybox + modules in dependency order (the package has no
# modules.dep; order from `strings -a X.ko | grep ^depends=`).
mods="virtio_ring virtio virtio_mmio virtio_blk virtio_console failover net_failover virtio_net vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport vsock_loopback"
mkdir -p r/bin r/sbin r/proc r/sys r/dev r/newroot r/lib/modules r/stacyvm
cp /bin/busybox r/bin/busybox
for m in $mods; do
  ko=$(find k/lib/modules -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  [ -n "$ko" ] || die "module $m not found in $kpkg"
  case "$ko" in *.xz) xz -dc "$ko" > "r/lib/modules/$m.ko" ;; *) cp "$ko" "r/lib/modules/$m.ko" ;; esac
done
cat > r/init <<EOF
#!/bin/busybox sh
# StacyVM microVM init (recipe $RECIPE): load the virtio modules, mount the
# sandbox's root disk and hand over to the agent, which becomes PID 1.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in $mods; do /bin/busybox insmod /lib/modules/\$m.ko || echo "stacyvm-init: insmod \$m failed"; done
fail() { echo "stacyvm-init: \$*"; /bin/busybox sync; /bin/busybox poweroff -f; }
[ -x /stacyvm/agent ] || fail "no agent in the initramfs"
i=0; while [ ! -b /dev/vda ] && [ \$i -lt 100 ]; do /bin/busybox usleep 20000; i=\$((i+1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || fail "cannot mount the root disk"
# The agent and its config live on a tmpfs in the new root, never written
# into the image itself.
/bin/busybox mkdir -p /newroot/.stacyvm || fail "cannot create /.stacyvm in the root disk"
/bin/busybox mount -t tmpfs -o mode=0700,size=64m stacyvm /newroot/.stacyvm
/bin/busybox cp /stacyvm/agent /stacyvm/config.json /newroot/.stacyvm/ || fail "cannot copy the agent"
/bin/busybox ip link set lo up
# Network "user" (QEMU slirp): the fixed addresses slirp serves.
if /bin/busybox grep -q '"network":"user"' /stacyvm/config.json; then
  /bin/busybox ip link set eth0 up && /bin/busybox ip addr add 10.0.2.15/24 dev eth0 \
    && /bin/busybox ip route add default via 10.0.2.2 || echo "stacyvm-init: network setup failed"
  # Never write through a symlink of the image (it may point anywhere).
  /bin/busybox mkdir -p /newroot/etc; /bin/busybox rm -f /newroot/etc/resolv.conf && echo "nameserver 10.0.2.3" > /newroot/etc/resolv.conf
fi
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev 2>/dev/null || /bin/busybox umount /dev
exec /bin/busybox switch_root /newroot /.stacyvm/agent --guest /.stacyvm/config.json
EOF
chmod +x r/init
(cd r && find . | cpio -o -H newc --quiet --owner=0:0 | gzip -1) > initrd-base.img

mkdir -p "$DIR"
install -m 0644 vmlinux "$DIR/vmlinux.tmp" && mv "$DIR/vmlinux.tmp" "$DIR/vmlinux"
install -m 0644 initrd-base.img "$DIR/initrd-base.img.tmp" && mv "$DIR/initrd-base.img.tmp" "$DIR/initrd-base.img"
cat > "$DIR/assets.json.tmp" <<EOF
{"recipe": $RECIPE, "kernel_package": "$kpkg", "kernel_version": "$kver", "modules": "$mods", "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
mv "$DIR/assets.json.tmp" "$DIR/assets.json"
log "built in $DIR in $((SECONDS - t0)) s (vmlinux $(du -h "$DIR/vmlinux" | cut -f1), initrd-base $(du -h "$DIR/initrd-base.img" | cut -f1))"
