#!/usr/bin/env bash
# Boots a Tessera ISO in Bochs: `scripts/run-bochs.sh ISO [COM1-LOG]`.
# CPU model corei7_skylake_x (VMX with EPT and unrestricted guest), BOCHS_CPUS
# of them (default 2, as configs/boards/bochs-pc.toml describes), 256 MiB,
# COM1 (the hypervisor console) to COM1-LOG (Bochs's own files beside it,
# named after it), COM2 to COM2_LOG (default: COM1-LOG with com2 for com1,
# for tests that give COM2 to a VM), no window (RFB display with no
# wait for a client), sound off. Bochs's debugger is built in, so a command
# file tells it to continue. With FOLLOW=1 the console is shown as it runs.
# With COM1_INPUT=<script>, COM1 is a socket instead and
# scripts/bochs-com1.py logs it and types what the script says.
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
if [ -n "${COM2_LOG:-}" ]; then
    com2=$(realpath -m "$COM2_LOG")
else
    com2=${com1%.log}
    com2=${com2%.com1}.com2.log
fi
rc="$base.bochsrc"
dbg="$base.debugger-rc"
vgabios=/usr/share/bochs/VGABIOS-lgpl-latest
[ -f "$vgabios" ] || vgabios=/usr/share/vgabios/vgabios.bin

if [ -n "${COM1_INPUT:-}" ]; then
    # A free port for Bochs's COM1 socket server.
    com1_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')
    com1_line="com1: enabled=1, mode=socket-server, dev=localhost:$com1_port"
else
    com1_line="com1: enabled=1, mode=file, dev=\"$com1\""
fi

cat >"$rc" <<BOCHSRC
megs: 256
cpu: model=corei7_skylake_x, count=${BOCHS_CPUS:-2}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=$vgabios
display_library: rfb, options="timeout=0"
ata0-master: type=cdrom, path="$iso", status=inserted
boot: cdrom
$com1_line
com2: enabled=1, mode=file, dev="$com2"
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
: >"$com2"
timeout "${BOCHS_TIMEOUT:-300}" bochs -q -f "$rc" -rc "$dbg" </dev/null >"$base.bochs.out" 2>&1 &
pid=$!
if [ -n "${COM1_INPUT:-}" ]; then
    python3 "$(dirname "$0")/bochs-com1.py" "$com1_port" "$com1" "$COM1_INPUT" &
fi
if [ -n "${FOLLOW:-}" ]; then
    tail -n +1 -f --pid="$pid" "$com1" | tr -d '\r'
fi
wait "$pid" || true
wait || true

if grep -q 'all VMs powered off; system off' "$com1"; then
    exit 0
elif grep -q 'not all by powering off' "$com1"; then
    exit 1
fi
exit 2
