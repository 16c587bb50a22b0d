#!/usr/bin/env bash
# Writes a Raspberry Pi 4 SD-card image: an MBR partition table with one
# FAT32 boot partition holding the Pi's boot firmware, config.txt, the
# board's device tree and the hypervisor as the 64-bit kernel. Built with
# sfdisk, mkfs.vfat and mtools on a plain file: no root, no loop devices.
#
#   scripts/mkimage-rpi4.sh <tessera.elf> <tessera.bin> <out.img>
#
# The firmware files come from scripts/fetch-rpi4.sh (build/rpi4/, or
# TESSERA_RPI4_DIR). config.txt is also left beside the image.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIRMWARE=${TESSERA_RPI4_DIR:-$ROOT/build/rpi4}
ELF=${1:?usage: mkimage-rpi4.sh <tessera.elf> <tessera.bin> <out.img>}
BIN=${2:?usage}
OUT=${3:?usage}

# The card: 1 MiB for the partition table (the first partition on an SD
# card's erase-block boundary), then the FAT32 partition to the end.
IMAGE_MIB=128
PART_START=2048                    # sectors of 512 bytes: 1 MiB
# Where the firmware puts the device tree: below the image, inside the
# hypervisor's region (board rpi4.toml), clear of the armstub page at 0.
DTB_ADDRESS=0x100000

die() { echo "mkimage-rpi4: $*" >&2; exit 1; }

need() { # $1 = command, $2 = Debian package
    command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 && return
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "mkimage-rpi4: installing $2 ($1)"
    $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
need sfdisk fdisk
need mkfs.vfat dosfstools
need mcopy mtools
export PATH=$PATH:/usr/sbin:/sbin

for f in start4.elf fixup4.dat bcm2711-rpi-4-b.dtb; do
    [ -s "$FIRMWARE/$f" ] || die "$FIRMWARE/$f missing: run scripts/fetch-rpi4.sh"
done
[ -s "$BIN" ] || die "$BIN missing: make build CONFIG=configs/rpi4.toml"

# The image is linked at a fixed address (board hypervisor.base + 2 MiB;
# not position-independent): its ELF entry point. The firmware loads it
# there with kernel_address.
entry=$(od -An -t x8 -j 24 -N 8 "$ELF" | tr -d ' ')
[ -n "$entry" ] || die "cannot read the entry point of $ELF"
KERNEL_ADDRESS=$(printf '0x%x' "$((16#$entry))")

out_dir=$(dirname "$OUT")
mkdir -p "$out_dir"
config=$out_dir/config.txt
cat >"$config" <<EOF
# Tessera on the Raspberry Pi 4 (written by scripts/mkimage-rpi4.sh).
# The firmware reads only this file; each line says why it is here.
#
# Start the cores in AArch64 at EL2 (the firmware's own armstub), the
# secondaries parked on the spin table at 0xd8-0xf0.
arm_64bit=1
# The hypervisor: an arm64 Image, not a Linux kernel.
kernel=tessera.bin
# Load it where it is linked (board hypervisor.base + 2 MiB): the image is
# not position-independent.
kernel_address=$KERNEL_ADDRESS
# The board's device tree, and where to put it: inside the hypervisor's
# region, below the image, so neither the image nor a VM overwrites it.
device_tree=bcm2711-rpi-4-b.dtb
device_tree_address=$DTB_ADDRESS
# Turn the UART on with a fixed clock: the hypervisor programs the PL011
# baud divisor (115200 8N1) from this 48 MHz clock and puts it on GPIO14/15.
enable_uart=1
init_uart_clock=48000000
# The VideoCore's share of the first GiB: ARM RAM then ends at 948 MiB
# (0x3b40_0000), the first RAM bank of configs/boards/rpi4*.toml.
gpu_mem=76
# Interrupts through the GIC-400 (the Pi 4's default, stated).
enable_gic=1
EOF

rm -f "$OUT.tmp"
truncate -s "${IMAGE_MIB}M" "$OUT.tmp"
# One primary partition, FAT32 with LBA (type 0c), marked bootable.
# Fixed disk id and volume serial: the same inputs give the same layout.
printf 'label: dos\nlabel-id: 0x54455353\nstart=%d, type=c, bootable\n' "$PART_START" |
    sfdisk --quiet "$OUT.tmp"
part_sectors=$((IMAGE_MIB * 2048 - PART_START))
# mkfs.vfat: --offset in sectors, the size in KiB blocks.
mkfs.vfat -F 32 -n TESSERA -i 54455353 --offset "$PART_START" "$OUT.tmp" "$((part_sectors / 2))" >/dev/null
fat="$OUT.tmp@@$((PART_START * 512))"
mcopy -i "$fat" "$FIRMWARE/start4.elf" "$FIRMWARE/fixup4.dat" \
    "$FIRMWARE/bcm2711-rpi-4-b.dtb" "$config" ::
mcopy -i "$fat" "$BIN" ::tessera.bin
mv "$OUT.tmp" "$OUT"
echo "sd card image: $OUT ($IMAGE_MIB MiB; write it with dd, see README)"
