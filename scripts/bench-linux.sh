#!/usr/bin/env bash
# Linux boot benchmark: one Linux VM alone (configs/qemu-virt-linux-single.toml)
# under Tessera, and the same kernel, initramfs and device tree booted by QEMU
# without a hypervisor, both under -icount shift=0,sleep=off (one instruction
# per nanosecond). Reports, from the guest's own counter read by its init
# (`TESSERA counter-at-init`):
#   vm-entry-to-userspace   guest clock at its first userspace line: the VM's
#                           counter starts at its entry (CNTVOFF), the bare
#                           kernel's at machine reset (= its entry)
#   reset-to-userspace      machine reset to that line: the VM's counter
#                           offset (printed by the hypervisor) plus the above
# each divided by the bare boot. Prints lines `LINUXBENCH <name> <value>`.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=configs/qemu-virt-linux-single.toml
IMAGE_DIR=build/aarch64/qemu-virt-linux-single
make -s build ARCH=aarch64 CONFIG="$CONFIG" >/dev/null 2>&1 || { echo "bench-linux: build failed" >&2; exit 1; }
ICOUNT=(-icount shift=0,sleep=off)

hyp_log=$(mktemp)
bare_log=$(mktemp)
trap 'rm -f "$hyp_log" "$bare_log"' EXIT

timeout 900 qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a72 \
    -smp 4 -m "$(cat "$IMAGE_DIR/qemu-memory")" -nographic \
    -semihosting-config enable=on,target=native "${ICOUNT[@]}" \
    -kernel "$IMAGE_DIR/tessera.bin" </dev/null 2>&1 | tr -d '\r' >"$hyp_log" || true
timeout 900 qemu-system-aarch64 -M virt,gic-version=3,dtb-randomness=off -cpu cortex-a72 \
    -smp 1 -m 256M -nographic -no-reboot "${ICOUNT[@]}" -dtb "$IMAGE_DIR/linux.dtb" \
    -kernel build/linux/Image -initrd build/linux/initramfs.cpio.gz \
    -append "console=ttyAMA0 tessera.name=linux tessera.poweroff" \
    </dev/null 2>&1 | tr -d '\r' >"$bare_log" || true

counter() { sed -n "s/^$1TESSERA counter-at-init \([0-9]*\) \([0-9]*\)$/\1 \2/p" "$2" | head -n 1; }
read -r hyp_ticks freq < <(counter '\[linux\] ' "$hyp_log") || true
read -r bare_ticks _ < <(counter '' "$bare_log") || true
offset=$(sed -n 's/^\[tessera\] vm linux: vCPU 0 starting .* (counter \([0-9]*\))$/\1/p' "$hyp_log" | head -n 1)
if [ -z "${hyp_ticks:-}" ] || [ -z "${bare_ticks:-}" ] || [ -z "$offset" ]; then
    echo "bench-linux: boot marks missing" >&2
    echo "--- with Tessera ---" >&2; tail -n 30 "$hyp_log" >&2
    echo "--- without ---" >&2; tail -n 30 "$bare_log" >&2
    exit 1
fi
ns_per_tick=$((1000000000 / freq))
vm=$((hyp_ticks * ns_per_tick))
machine=$(((offset + hyp_ticks) * ns_per_tick))
bare=$((bare_ticks * ns_per_tick))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "LINUXBENCH bare-reset-to-userspace $bare"
echo "LINUXBENCH vm-entry-to-userspace $vm"
echo "LINUXBENCH reset-to-userspace $machine"
echo "LINUXBENCH vm-entry-ratio $(ratio "$vm" "$bare")"
echo "LINUXBENCH machine-ratio $(ratio "$machine" "$bare")"
