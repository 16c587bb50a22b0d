#!/usr/bin/env bash
# Installs everything Tessera needs on a Debian 12 machine. Idempotent: when
# every tool is present it installs nothing. The Makefile calls it whenever a
# tool is missing, so `make run` / `make test` are the whole set-up.
set -euo pipefail

QEMU_MIN_MAJOR=9

have_rust() {
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
        [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ] &&
        command -v rust-lld >/dev/null 2>&1 && [ -x /usr/lib/llvm-22/bin/llvm-objcopy ] &&
        [ -x /usr/bin/clippy-driver ]
}

have_qemu() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || return 1
    local major
    major=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)
    [ "${major:-0}" -ge "$QEMU_MIN_MAJOR" ]
}

if have_rust && have_qemu; then
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: run as root or install sudo" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive

# QEMU >= 9 (EL2 + GICv3 virtualization, raspi4b) comes from bookworm-backports;
# bookworm's 7.2 also conflicts with the backported qemu-utils some images carry.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' |
        $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
$SUDO apt-get update -qq >/dev/null

if ! have_rust; then
    # Debian's own Rust ships the library sources -Zbuild-std needs for the
    # bare-metal targets (rustup cannot download them here) and lld to link.
    $SUDO apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src rust-web-llvm rust-web-clippy lld-22 llvm-22
fi
if ! have_qemu; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-arm qemu-system-x86
fi

have_rust || { echo "setup: Debian Rust (rustc-web, rust-web-src) still missing" >&2; exit 1; }
have_qemu || { echo "setup: qemu-system-aarch64 >= $QEMU_MIN_MAJOR still missing" >&2; exit 1; }
echo "setup: all tools present"
