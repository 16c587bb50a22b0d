#!/usr/bin/env bash
# Boots the Linux guest assets (build/linux/Image + initramfs) in plain QEMU,
# without Tessera: the no-hypervisor baseline for the Linux boot tests and the
# boot benchmark. Gives the guest what the demo gives its Linux VMs (a virtio-blk
# disk holding the test pattern, QEMU's second PL011), prints the guest's
# "TESSERA ..." result lines and the guest-clock times of two boot marks,
# checks the results and exits 0 only when they are all as expected. The
# console log is kept in build/linux/baseline-console.log.
#
# Usage: scripts/linux-baseline.sh [--icount] [--dtb FILE.dts|FILE.dtb]
#   --dtb      boot with this device tree instead of QEMU's own (a .dts is
#              compiled with dtc), e.g. guests/linux/reference-vm.dts
#   --icount   run under -icount shift=0,sleep=off: one instruction per
#              nanosecond of guest time (the counter runs at 62.5 MHz with
#              cortex-a72, 1 GHz with max; printk time is in ns either way),
#              with a fixed RTC and random seed, so every number repeats.
# Environment: SMP (2), MEM (256M), CPU (cortex-a72), TIMEOUT seconds (300),
#              TESSERA_LINUX_DIR (build/linux).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS=${TESSERA_LINUX_DIR:-$ROOT/build/linux}
SMP=${SMP:-2}
MEM=${MEM:-256M}
CPU=${CPU:-cortex-a72}
TIMEOUT=${TIMEOUT:-300}

usage() {
    echo "usage: $0 [--icount] [--dtb FILE.dts|FILE.dtb]" >&2
    exit 2
}
icount=()
dtb=
# shellcheck disable=SC2054 # the commas belong to QEMU's option values
while [ $# -gt 0 ]; do
    case "$1" in
    --icount) icount=(-icount shift=0,sleep=off -rtc base=2025-01-01T00:00:00,clock=vm -seed 1) ;;
    --dtb) [ $# -ge 2 ] || usage; dtb=$2; shift ;;
    *) usage ;;
    esac
    shift
done

if [ ! -s "$ASSETS/Image" ] || [ ! -s "$ASSETS/initramfs.cpio.gz" ]; then
    bash "$ROOT/scripts/fetch-linux.sh"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The test disk: 4 MiB whose first line is the pattern the guest checks.
printf 'TESSERA-DISK-PATTERN\n' >"$work/disk.img"
truncate -s 4M "$work/disk.img"
: >"$work/uart1.txt"

# --dtb: the guest sees this tree instead of QEMU's (QEMU still fills in
# /chosen's bootargs and initrd range and the memory node).
dtb_args=()
if [ -n "$dtb" ]; then
    case "$dtb" in
    *.dts)
        command -v dtc >/dev/null 2>&1 || apt-get install -y -qq device-tree-compiler >/dev/null
        dtc -q -I dts -O dtb -o "$work/vm.dtb" "$dtb"
        dtb_args=(-dtb "$work/vm.dtb")
        ;;
    *) dtb_args=(-dtb "$dtb") ;;
    esac
fi

# dtb-randomness=off: no kaslr-seed/rng-seed in the device tree, like the
# trees Tessera generates, and the same boot path on every run.
# tessera.poweroff: the guest powers off after its checks (QEMU exits).
status=0
timeout --foreground "$TIMEOUT" qemu-system-aarch64 \
    -M virt,gic-version=3,dtb-randomness=off -cpu "$CPU" -smp "$SMP" -m "$MEM" \
    -nographic -no-reboot "${icount[@]}" "${dtb_args[@]}" \
    -kernel "$ASSETS/Image" -initrd "$ASSETS/initramfs.cpio.gz" \
    -append "console=ttyAMA0 tessera.name=baseline tessera.poweroff" \
    -drive file="$work/disk.img",if=none,format=raw,id=d0 -device virtio-blk-device,drive=d0 \
    -serial mon:stdio -serial file:"$work/uart1.txt" \
    </dev/null >"$work/console.log" 2>&1 || status=$?
tr -d '\r' <"$work/console.log" >"$work/console.txt"
cp "$work/console.txt" "$ASSETS/baseline-console.log"

grep -a '^TESSERA ' "$work/console.txt" || true
# printk timestamps (seconds, microsecond resolution) of the kernel's hand-over
# to /init and of init's first line (it writes that line to /dev/kmsg).
mark() {
    sed -n "s/^\[ *\([0-9]*\)\.\([0-9]*\)\] $1.*/\1\2/p" "$work/console.txt" | head -n 1 |
        sed 's/^0*\(.\)/\1/'
}
run_init_us=$(mark 'Run \/init as init process')
userspace_us=$(mark 'tessera-init: userspace started')
echo "BASELINE run-init-us ${run_init_us:-missing}"
echo "BASELINE first-userspace-line-us ${userspace_us:-missing}"
echo "BASELINE uart1 $(head -n 1 "$work/uart1.txt")"

fail() {
    echo "linux-baseline: FAIL: $*" >&2
    echo "--- console log ---" >&2
    cat "$work/console.txt" >&2
    exit 1
}
[ "$status" -eq 0 ] || fail "QEMU exit status $status (124 = timeout after ${TIMEOUT}s)"
expect() { grep -aqx "TESSERA $1" "$work/console.txt" || fail "no line 'TESSERA $1'"; }
expect "nproc $SMP"
expect "timer-irqs-advance yes"
expect "vda pattern-ok"
expect "ttyAMA1 present"
expect "init-done"
grep -aqE '^TESSERA memtotal_kb [1-9][0-9]*$' "$work/console.txt" || fail "no MemTotal"
ipis=$(sed -n 's/^TESSERA ipi-count //p' "$work/console.txt")
if [ "$SMP" -gt 1 ] && [ "${ipis:-0}" -eq 0 ]; then
    fail "no IPIs counted with $SMP CPUs"
fi
[ "$(head -n 1 "$work/uart1.txt")" = "TESSERA passthrough-uart hello" ] ||
    fail "second UART did not receive the hello line"
if [ -z "$run_init_us" ] || [ -z "$userspace_us" ]; then
    fail "boot marks missing"
fi
echo "linux-baseline: PASS"
