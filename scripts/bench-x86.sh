#!/usr/bin/env bash
# x86 trap-cost benchmark: boots the x86 bench guest in Bochs twice. Bochs's
# time stamp counter advances once per executed instruction (guest and
# hypervisor), so the guest's RDTSC deltas are instruction counts and the
# two runs must print the same numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=configs/bochs-x86-bench.toml
DIR=build/x86_64/bochs-x86-bench
log=$(mktemp)
if ! make -s iso ARCH=x86_64 CONFIG="$CONFIG" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"

run_once() {
    bash scripts/run-bochs.sh "$DIR/tessera.iso" "$DIR/com1-$1.log" >/dev/null || true
    tr -d '\r' <"$DIR/com1-$1.log" |
        sed -n 's/^\[bench\] BENCH \([a-z0-9-]*\) \([0-9]*\) .*/\1 \2/p'
}

first=$(run_once 1)
second=$(run_once 2)
if [ -z "$first" ]; then
    echo "bench: no BENCH lines from the x86 bench guest (see $DIR/com1-1.log)" >&2
    exit 1
fi
echo "Tessera x86 trap cost (Bochs 2.7, corei7_skylake_x, VMX + EPT)"
echo "net instructions per round trip (1,000 repetitions, RDTSC = instructions in Bochs)"
printf '%-20s %10s %10s\n' operation "run 1" "run 2"
paste -d' ' <(echo "$first") <(echo "$second") | while read -r op a _ b; do
    printf '%-20s %10s %10s\n' "$op" "$a" "$b"
done
if [ "$first" != "$second" ]; then
    echo "bench: the two runs differ" >&2
    exit 1
fi
