#!/usr/bin/env bash
# Boots a Tessera ISO in Bochs: `scripts/run-bochs.sh ISO [COM1-LOG]`.
# CPU model corei7_skylake_x (VMX with EPT and unrestricted guest), BOCHS_CPUS
# of them (default 2, as configs/boards/bochs-pc.toml describes), 256 MiB,
# COM1 (the hypervisor console) to COM1-LOG (Bochs's own files beside it,
# named after it), no window (RFB display with no
# wait for a client), sound off. Bochs's debugger is built in, so a command
# file tells it to continue. With FOLLOW=1 the console is shown as it runs.
#
# Exit status, read from the console: 0 when every VM powered off, 1 when a
# VM was stopped, 2 otherwise (boot error, panic, timeout after
# BOCHS_TIMEOUT seconds, default 300).
set -euo pipefail

iso=$(realpath "$1")
com1=${2:-${iso%.iso}.com1.log}
dir=$(dirname "$com1")
mkdir -p "$dir"
com1=$(realpath -m "$com1")
base=${com1%.log}
rc="$base.bochsrc"
dbg="$base.debugger-rc"
vgabios=/usr/share/bochs/VGABIOS-lgpl-latest
[ -f "$vgabios" ] || vgabios=/usr/share/vgabios/vgabios.bin

cat >"$rc" <<BOCHSRC
megs: 256
cpu: model=corei7_skylake_x, count=${BOCHS_CPUS:-2}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=$vgabios
display_library: rfb, options="timeout=0"
ata0-master: type=cdrom, path="$iso", status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev="$com1"
speaker: enabled=0
sound: driver=dummy
log: $base.bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
BOCHSRC
printf 'c\nquit\n' >"$dbg"

: >"$com1"
timeout "${BOCHS_TIMEOUT:-300}" bochs -q -f "$rc" -rc "$dbg" </dev/null >"$base.bochs.out" 2>&1 &
pid=$!
if [ -n "${FOLLOW:-}" ]; then
    tail -n +1 -f --pid="$pid" "$com1" | tr -d '\r'
fi
wait "$pid" || true

if grep -q 'all VMs powered off; system off' "$com1"; then
    exit 0
elif grep -q 'not all by powering off' "$com1"; then
    exit 1
fi
exit 2
