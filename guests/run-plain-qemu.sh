#!/usr/bin/env bash
# Runs a raw guest image under plain QEMU (no EL2, QEMU's own PSCI over HVC)
# at guest-physical 0x4000_0000, the address Tessera loads it at.
# QEMU would load a raw -kernel file at RAM base + 0x80000, and a loader
# device at RAM base collides with the DTB, so the image is wrapped in an ELF.
# Usage: guests/run-plain-qemu.sh IMAGE.bin [extra qemu args...]
# Default machine: 2 vCPUs, 64 MiB (what the plain-qemu build assumes).
set -euo pipefail

image=$(realpath "$1")
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp "$image" "$work/image.bin"
cat >"$work/wrap.ld" <<'LD'
PHDRS { image PT_LOAD; }
SECTIONS {
    .text 0x40000000 : { image.bin(.data) } :image
    /DISCARD/ : { *(.note*) }
}
LD
(cd "$work" && rust-lld -flavor gnu -m aarch64elf -b binary image.bin -T wrap.ld \
    -e 0x40000000 -o image.elf)

exec qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a72 -smp 2 -m 64M \
    -nographic -no-reboot -kernel "$work/image.elf" "$@"
