#!/usr/bin/env bash
# Fetches the Linux guests' kernel and busybox from Debian 12's archive and
# builds their initramfs. Outputs, cached outside git:
#   build/linux/Image              uncompressed arm64 Image (Debian's own build)
#   build/linux/initramfs.cpio.gz  busybox, guests/linux/init, the modules needed
#   build/linux/VERSIONS           exact package versions and output checksums
# Idempotent: with the outputs present it touches no network and only rebuilds
# the initramfs when guests/linux/ or the initramfs builder changed.
# TESSERA_LINUX_DIR overrides the output directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${TESSERA_LINUX_DIR:-$ROOT/build/linux}
IMAGE=$OUT/Image
INITRAMFS=$OUT/initramfs.cpio.gz
VERSIONS=$OUT/VERSIONS
DEBS=$OUT/debs
KERNEL_ROOT=$OUT/kernel
BUSYBOX_ROOT=$OUT/busybox
INITRAMFS_INPUTS=("$ROOT/guests/linux/init" "$ROOT/guests/linux/ivc" "$ROOT/scripts/mkinitramfs.py" "${BASH_SOURCE[0]}")

# What the guests need from the kernel: the console, interrupt controller,
# timer and PSCI built in; the test disk's virtio-mmio + virtio-blk built in
# or as modules (loaded from the initramfs); a gzip'd initramfs and devtmpfs;
# for inter-VM channels the generic PCI host (the ivc-pci bridge) and
# uio_pci_generic. "ym" accepts =y or =m.
REQUIRED_CONFIG=(SERIAL_AMBA_PL011=y SERIAL_AMBA_PL011_CONSOLE=y ARM_GIC_V3=y
    ARM_ARCH_TIMER=y ARM_PSCI_FW=y SMP=y BLK_DEV_INITRD=y RD_GZIP=y DEVTMPFS=y
    VIRTIO_MMIO=ym VIRTIO_BLK=ym PCI_HOST_GENERIC=y UIO=ym UIO_PCI_GENERIC=ym)
# Options above that may be modules, and the module each one builds.
declare -A MODULE_OF=([VIRTIO_MMIO]=virtio_mmio [VIRTIO_BLK]=virtio_blk [UIO]=uio
    [UIO_PCI_GENERIC]=uio_pci_generic)

log() { echo "fetch-linux: $*"; }
die() { echo "fetch-linux: $*" >&2; exit 1; }

# shellcheck source=scripts/lib-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-apt.sh"

kernel_config() { echo "$KERNEL_ROOT"/boot/config-*; }

# The kernel options from REQUIRED_CONFIG the unpacked kernel lacks.
missing_config() {
    local config item name allowed value
    config=$(kernel_config)
    for item in "${REQUIRED_CONFIG[@]}"; do
        name=${item%%=*} allowed=${item#*=}
        value=$(sed -n "s/^CONFIG_$name=//p" "$config")
        if [ -z "$value" ] || [[ $allowed != *"$value"* ]]; then
            echo "CONFIG_$name=${value:-unset}"
        fi
    done
}

# Modules the initramfs must carry: the REQUIRED_CONFIG options built as =m.
needed_modules() {
    local option config
    config=$(kernel_config)
    for option in "${!MODULE_OF[@]}"; do
        if grep -qx "CONFIG_$option=m" "$config"; then
            echo "${MODULE_OF[$option]}"
        fi
    done | sort
}

initramfs_stale() {
    [ -s "$INITRAMFS" ] || return 0
    local input
    for input in "${INITRAMFS_INPUTS[@]}"; do
        [ "$input" -nt "$INITRAMFS" ] && return 0
    done
    return 1
}

ensure_python() {
    command -v python3 >/dev/null 2>&1 && return
    log "installing python3 (writes the initramfs)"
    $SUDO apt-get install -y -qq --no-install-recommends python3-minimal >/dev/null
}

write_versions() {
    {
        echo "# Debian packages behind build/linux/ (scripts/fetch-linux.sh)"
        local deb
        for deb in "$DEBS"/*.deb; do
            # shellcheck disable=SC2016 # ${...} is dpkg-deb's format syntax
            dpkg-deb -W --showformat='${Package} ${Version} ${Architecture}\n' "$deb"
        done
        echo "modules (with their dependencies) $(needed_modules | paste -sd ' ')"
        (cd "$OUT" && sha256sum Image initramfs.cpio.gz)
    } >"$VERSIONS.tmp"
    mv "$VERSIONS.tmp" "$VERSIONS"
}

build_initramfs() {
    ensure_python
    local args=() module
    for module in $(needed_modules); do
        args+=(--module "$module")
    done
    python3 "$ROOT/scripts/mkinitramfs.py" --busybox "$BUSYBOX_ROOT/bin/busybox" \
        --init "$ROOT/guests/linux/init" --tool "$ROOT/guests/linux/ivc" --kernel-root "$KERNEL_ROOT" "${args[@]}" \
        --out "$INITRAMFS"
    write_versions
}

# One run at a time (parallel make or boot tests may start several).
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

# --- Fast path: everything fetched before. ---------------------------------
if [ -s "$IMAGE" ] && [ -s "$VERSIONS" ] && [ -x "$BUSYBOX_ROOT/bin/busybox" ] &&
    [ -f "$(kernel_config)" ]; then
    if initramfs_stale; then
        build_initramfs
    fi
    exit 0
fi

# --- Fetch. -----------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 || die "needs Debian's apt-get (Debian 12 host)"

need_update=no
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
    need_update=yes
fi
if [ "$need_update" = no ] && ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    need_update=yes
fi
apt_update() {
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
}
[ "$need_update" = yes ] && apt_update

# The newest Debian 12 (6.1) kernel ABI the archive offers: the same name a
# fresh Debian 12 machine resolves, never a backports 6.x kernel.
newest_kernel() { # $1 = flavour (cloud-arm64 or arm64)
    apt-cache search --names-only "^linux-image-6\.1\.0-[0-9]+-$1\$" |
        awk '{ print $1 }' | sort -V | tail -n 1
}

rm -rf "$DEBS"
mkdir -p "$DEBS"
# A stale package list names files the archive has dropped: update once, retry.
download() {
    (cd "$DEBS" && "${APT_DOWNLOAD[@]}" "$@" >/dev/null) && return
    [ "$need_update" = yes ] && return 1
    need_update=yes
    apt_update
    (cd "$DEBS" && "${APT_DOWNLOAD[@]}" "$@" >/dev/null)
}

unpack_kernel() { # $1 = package name
    rm -f "$DEBS"/linux-image-*.deb
    download "$1:arm64" || die "cannot download $1:arm64"
    rm -rf "$KERNEL_ROOT"
    dpkg-deb -x "$DEBS"/linux-image-*.deb "$KERNEL_ROOT"
}

kernel=$(newest_kernel cloud-arm64)
[ -n "$kernel" ] || die "no linux-image-6.1.0-*-cloud-arm64 in the package lists"
log "kernel: $kernel"
unpack_kernel "$kernel"
missing=$(missing_config)
if [ -n "$missing" ]; then
    log "$kernel lacks: $(echo "$missing" | paste -sd ' '); using the generic flavour"
    kernel=$(newest_kernel arm64)
    [ -n "$kernel" ] || die "no linux-image-6.1.0-*-arm64 in the package lists"
    unpack_kernel "$kernel"
    missing=$(missing_config)
    [ -z "$missing" ] || die "$kernel lacks: $(echo "$missing" | paste -sd ' ')"
fi

log "busybox: busybox-static:arm64"
download busybox-static:arm64 || die "cannot download busybox-static:arm64"
rm -rf "$BUSYBOX_ROOT"
dpkg-deb -x "$DEBS"/busybox-static_*.deb "$BUSYBOX_ROOT"
[ -x "$BUSYBOX_ROOT/bin/busybox" ] || die "busybox-static has no bin/busybox"

# Debian ships arm64 kernels as a plain Image named vmlinuz; decompress one
# that is gzip'd. Either way the arm64 header's magic "ARM\x64" must be at 0x38.
image_magic() { od -An -tx1 -j56 -N4 "$1" | tr -d ' \n'; }
vmlinuz=$(echo "$KERNEL_ROOT"/boot/vmlinuz-*)
if [ "$(od -An -tx1 -N2 "$vmlinuz" | tr -d ' \n')" = 1f8b ]; then
    gzip -dc "$vmlinuz" >"$IMAGE.tmp"
else
    cp "$vmlinuz" "$IMAGE.tmp"
fi
[ "$(image_magic "$IMAGE.tmp")" = 41524d64 ] ||
    die "$vmlinuz is not an arm64 Image (no ARM\\x64 magic at 0x38; compressed in an unknown way?)"
mv "$IMAGE.tmp" "$IMAGE"

build_initramfs
log "done: $IMAGE, $INITRAMFS, $VERSIONS"
