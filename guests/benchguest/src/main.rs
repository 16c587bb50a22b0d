//! Trap-cost benchmark: times `N` round trips of each trapping operation with
//! the PMU cycle counter and subtracts the same loop with a `nop` in place of
//! the trapping instruction.
//!
//! Under `qemu-system-aarch64 -icount shift=0,sleep=off` PMCCNTR_EL0 counts
//! one per instruction, so the result is the number of instructions (guest and
//! hypervisor) one round trip costs, identical from run to run.

#![no_std]
#![no_main]

use core::arch::asm;

mod latency;

use tessera_guest::console::{PL011_BASE, UARTFR, UARTIMSC};
use tessera_guest::exception::guarded;
use tessera_guest::{cpu, gic, hypercall, println, psci};

tessera_guest::entry!(main);

/// Round trips per measurement.
const N: u64 = 10_000;
/// Multiplier applied to CNTVCT_EL0 when there is no cycle counter.
const CNTVCT_SCALE: u64 = 16;

/// The operations measured, with their names in the output.
#[derive(Clone, Copy)]
enum Op {
    NullHypercall,
    MmioRead,
    MmioWrite,
    SysregRead,
    GicdTyperRead,
}

impl Op {
    const ALL: [Op; 5] = [
        Op::NullHypercall,
        Op::MmioRead,
        Op::MmioWrite,
        Op::SysregRead,
        Op::GicdTyperRead,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::NullHypercall => "null-hypercall",
            Op::MmioRead => "mmio-read",
            Op::MmioWrite => "mmio-write",
            Op::SysregRead => "sysreg-read",
            Op::GicdTyperRead => "gicd-typer-read",
        }
    }
}

/// Which counter the measurements use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clock {
    Cycles,
    VirtualCounter,
}

fn read_clock(clock: Clock) -> u64 {
    let v: u64;
    match clock {
        // SAFETY: reading the cycle counter has no side effects.
        Clock::Cycles => unsafe {
            asm!("isb", "mrs {}, pmccntr_el0", "isb", out(reg) v, options(nomem, nostack, preserves_flags))
        },
        Clock::VirtualCounter => v = cpu::cntvct() * CNTVCT_SCALE,
    }
    v
}

/// Runs `n` iterations of `op` (or of its `nop` stand-in when `baseline`) and
/// returns the elapsed count. Only the trapping instruction differs between
/// the two loops; for the hypercall the x0 reload stays in both.
fn time_loop(clock: Clock, op: Op, baseline: bool, n: u64) -> u64 {
    let start = read_clock(clock);
    // SAFETY (all arms): each loop only executes the named access: the NULL
    // hypercall, a read of the UART flag register, a write of 0 (all masked)
    // to the UART interrupt mask register, or an ID register read. The
    // SMCCC call may clobber x0..x17, declared below.
    unsafe {
        match (op, baseline) {
            (Op::NullHypercall, false) => asm!(
                "1:",
                "movz x0, #{fid_hi}, lsl #16",
                "hvc #0",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                fid_hi = const hypercall::NULL >> 16,
                n = inout(reg) n => _,
                out("x0") _, out("x1") _, out("x2") _, out("x3") _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack),
            ),
            (Op::NullHypercall, true) => asm!(
                "1:",
                "movz x0, #{fid_hi}, lsl #16",
                "nop",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                fid_hi = const hypercall::NULL >> 16,
                n = inout(reg) n => _,
                out("x0") _,
                options(nostack),
            ),
            (Op::MmioRead, false) => asm!(
                "1:",
                "ldr {v:w}, [{a}]",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                a = in(reg) (PL011_BASE + UARTFR) as u64,
                v = out(reg) _,
                n = inout(reg) n => _,
                options(nostack),
            ),
            (Op::MmioWrite, false) => asm!(
                "1:",
                "str wzr, [{a}]",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                a = in(reg) (PL011_BASE + UARTIMSC) as u64,
                n = inout(reg) n => _,
                options(nostack),
            ),
            (Op::GicdTyperRead, false) => asm!(
                "1:",
                "ldr {v:w}, [{a}]",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                a = in(reg) gic::GICD_BASE + gic::gicd::TYPER,
                v = out(reg) _,
                n = inout(reg) n => _,
                options(nostack),
            ),
            (Op::SysregRead, false) => asm!(
                "1:",
                "mrs {v}, id_aa64pfr0_el1",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                v = out(reg) _,
                n = inout(reg) n => _,
                options(nostack),
            ),
            (_, true) => asm!(
                "1:",
                "nop",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                n = inout(reg) n => _,
                options(nomem, nostack),
            ),
        }
    }
    read_clock(clock).wrapping_sub(start)
}

/// Formats `(op - nop) / n` with two decimals (rounded), in integers only.
struct Net {
    negative: bool,
    hundredths: u64,
}

impl Net {
    fn new(op: u64, nop: u64, n: u64) -> Self {
        let (negative, diff) = if op >= nop {
            (false, op - nop)
        } else {
            (true, nop - op)
        };
        let hundredths = (diff * 100 + n / 2) / n;
        // A difference that rounds to zero prints as 0.00, not -0.00.
        Net {
            negative: negative && hundredths != 0,
            hundredths,
        }
    }
}

impl core::fmt::Display for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(
            f,
            "{}{}.{:02}",
            sign,
            self.hundredths / 100,
            self.hundredths % 100
        )
    }
}

fn main() -> ! {
    cpu::mask_all_exceptions();
    cpu::enable_cycle_counter();
    let probe = read_clock(Clock::Cycles);
    let clock = if probe == 0 && read_clock(Clock::Cycles) == 0 {
        println!(
            "BENCH-INFO PMCCNTR_EL0 reads 0: falling back to CNTVCT_EL0 x{}",
            CNTVCT_SCALE
        );
        Clock::VirtualCounter
    } else {
        Clock::Cycles
    };
    let unit = match clock {
        Clock::Cycles => "instructions/round-trip",
        Clock::VirtualCounter => "cntvct-x16-ticks/round-trip (no PMU: CNTVCT_EL0 x16)",
    };

    // An undefined HVC would otherwise end the run; report and skip instead.
    let (_, fault) = guarded(hypercall::null);
    let hypercall_ok = fault.is_none();
    if let Some(f) = fault {
        println!(
            "BENCH-SKIP null-hypercall hvc raised an exception esr={:#x}",
            f.esr
        );
    }
    let ops = Op::ALL
        .into_iter()
        .filter(|&op| hypercall_ok || !matches!(op, Op::NullHypercall));

    // Warm-up pass: fills caches/TLBs and settles any lazy set-up.
    for op in ops.clone() {
        time_loop(clock, op, false, N);
        time_loop(clock, op, true, N);
    }

    for op in ops {
        let t_op = time_loop(clock, op, false, N);
        let t_nop = time_loop(clock, op, true, N);
        println!("BENCH {} {} {}", op.name(), Net::new(t_op, t_nop, N), unit);
        println!("BENCH-RAW {} op={} nop={} n={}", op.name(), t_op, t_nop, N);
    }
    println!(
        "BENCH vtimer-latency {} instructions/interrupt (spinning)",
        latency::vtimer(false)
    );
    println!(
        "BENCH vtimer-latency-wfi {} instructions/interrupt (idle in WFI)",
        latency::vtimer(true)
    );
    match latency::sgi() {
        Some(n) => println!("BENCH sgi-latency {} instructions/interrupt", n),
        None => println!("BENCH-SKIP sgi-latency needs a second vCPU"),
    }
    println!("BENCH-DONE");
    psci::system_off()
}
