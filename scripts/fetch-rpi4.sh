#!/usr/bin/env bash
# Fetches what a Raspberry Pi 4 SD card needs besides Tessera itself, from
# Debian 12's archive. Outputs, cached outside git:
#   build/rpi4/start4.elf           the VideoCore boot firmware (raspi-firmware,
#   build/rpi4/fixup4.dat           component non-free-firmware) and its memory split
#   build/rpi4/bcm2711-rpi-4-b.dtb  the board's device tree, from Debian's generic
#                                   arm64 kernel (usr/lib/linux-image-*/broadcom/)
#   build/rpi4/VERSIONS             exact package versions and output checksums
# Idempotent: with the outputs present it touches no network.
# TESSERA_RPI4_DIR overrides the output directory.
#
# raspi-firmware is in `non-free-firmware`, which a stock Debian 12 source
# list does not name; the script adds one line for it (signed by Debian's
# own archive key) in /etc/apt/sources.list.d/tessera-non-free-firmware.list.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${TESSERA_RPI4_DIR:-$ROOT/build/rpi4}
DEBS=$OUT/debs
FILES=(start4.elf fixup4.dat bcm2711-rpi-4-b.dtb)
SOURCE_LIST=/etc/apt/sources.list.d/tessera-non-free-firmware.list
SOURCE_LINE="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm non-free-firmware"

log() { echo "fetch-rpi4: $*"; }
die() { echo "fetch-rpi4: $*" >&2; exit 1; }

# shellcheck source=scripts/lib-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-apt.sh"

all_present() {
    local f
    for f in "${FILES[@]}" VERSIONS; do
        [ -s "$OUT/$f" ] || return 1
    done
}

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

# --- Fast path: everything fetched before. ---------------------------------
all_present && exit 0

# --- Fetch. -----------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 || die "needs Debian's apt-get (Debian 12 host)"

need_update=no
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg"
    $SUDO dpkg --add-architecture arm64
    need_update=yes
fi
if ! grep -rqs "bookworm non-free-firmware" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding Debian's non-free-firmware component: $SOURCE_LIST"
    echo "$SOURCE_LINE" | $SUDO tee "$SOURCE_LIST" >/dev/null
    need_update=yes
fi
if [ "$need_update" = no ] && ! apt-cache show raspi-firmware >/dev/null 2>&1; then
    need_update=yes
fi
apt_update() {
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
}
[ "$need_update" = yes ] && apt_update

mkdir -p "$DEBS"
download() {
    (cd "$DEBS" && "${APT_DOWNLOAD[@]}" "$@" >/dev/null) && return
    [ "$need_update" = yes ] && return 1
    need_update=yes
    apt_update
    (cd "$DEBS" && "${APT_DOWNLOAD[@]}" "$@" >/dev/null)
}

# The firmware: raspi-firmware is an `all` package (VideoCore blobs).
rm -f "$DEBS"/raspi-firmware_*.deb
log "firmware: raspi-firmware"
download raspi-firmware || die "cannot download raspi-firmware (non-free-firmware)"
fw_root=$(mktemp -d)
trap 'rm -rf "$fw_root"' EXIT
dpkg-deb -x "$DEBS"/raspi-firmware_*.deb "$fw_root"
for f in start4.elf fixup4.dat; do
    src=$(find "$fw_root" -name "$f" -type f | head -n 1)
    [ -n "$src" ] || die "raspi-firmware has no $f"
    cp "$src" "$OUT/$f.tmp" && mv "$OUT/$f.tmp" "$OUT/$f"
done

# The device tree: the generic arm64 kernel flavour carries the Broadcom
# trees (the cloud flavour has none). Only its DTB is kept.
kernel=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-arm64$' |
    awk '{ print $1 }' | sort -V | tail -n 1)
[ -n "$kernel" ] || die "no linux-image-6.1.0-*-arm64 in the package lists"
log "device tree: $kernel"
rm -f "$DEBS"/linux-image-*.deb
download "$kernel:arm64" || die "cannot download $kernel:arm64"
kernel_root=$fw_root/kernel
mkdir -p "$kernel_root"
dpkg-deb --fsys-tarfile "$DEBS"/linux-image-*.deb |
    tar -x -C "$kernel_root" --wildcards '*/broadcom/bcm2711-rpi-4-b.dtb'
dtb=$(find "$kernel_root" -path '*/broadcom/bcm2711-rpi-4-b.dtb' | head -n 1)
[ -n "$dtb" ] || die "$kernel has no broadcom/bcm2711-rpi-4-b.dtb"
cp "$dtb" "$OUT/bcm2711-rpi-4-b.dtb.tmp" && mv "$OUT/bcm2711-rpi-4-b.dtb.tmp" "$OUT/bcm2711-rpi-4-b.dtb"

{
    echo "# Debian packages behind build/rpi4/ (scripts/fetch-rpi4.sh)"
    for deb in "$DEBS"/*.deb; do
        # shellcheck disable=SC2016 # ${...} is dpkg-deb's format syntax
        dpkg-deb -W --showformat='${Package} ${Version} ${Architecture}\n' "$deb"
    done
    (cd "$OUT" && sha256sum "${FILES[@]}")
} >"$OUT/VERSIONS.tmp"
mv "$OUT/VERSIONS.tmp" "$OUT/VERSIONS"
# The kernel package is large and only its DTB is used.
rm -f "$DEBS"/linux-image-*.deb
log "done: ${FILES[*]} in $OUT"
