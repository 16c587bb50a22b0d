#!/usr/bin/env bash
# Installs what the x86_64 targets need on Debian 12, beside scripts/setup.sh:
# Bochs 2.7 (Debian's build has VMX and EPT; QEMU's TCG has no VMX) with its
# BIOS, GRUB's BIOS and UEFI images, xorriso and mtools for
# `grub-mkrescue`, and OVMF (UEFI for QEMU) to check the ISO boots on UEFI.
# Idempotent: installs nothing when everything is present.
set -euo pipefail

have_x86_tools() {
    command -v bochs >/dev/null 2>&1 || return 1
    [ -f /usr/share/bochs/BIOS-bochs-latest ] || return 1
    [ -f /usr/share/bochs/VGABIOS-lgpl-latest ] || [ -f /usr/share/vgabios/vgabios.bin ] || return 1
    [ -e /usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_rfb_gui.so ] || return 1
    command -v grub-mkrescue >/dev/null 2>&1 || return 1
    [ -d /usr/lib/grub/i386-pc ] && [ -d /usr/lib/grub/x86_64-efi ] || return 1
    [ -f /usr/share/ovmf/OVMF.fd ] || return 1
    command -v xorriso >/dev/null 2>&1 && command -v mformat >/dev/null 2>&1
}

if have_x86_tools; then
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup-x86: run as root or install sudo" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends bochs bochsbios vgabios \
    grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools ovmf >/dev/null

have_x86_tools || { echo "setup-x86: Bochs or GRUB's tools still missing" >&2; exit 1; }
echo "setup-x86: all x86 tools present"
