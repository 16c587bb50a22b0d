//! Interrupt latencies in instructions: from the event (the virtual counter
//! reaching the timer's compare value; the sender's SGI write) to the first
//! instruction of the receiving vCPU's IRQ vector, which stamps CNTVCT_EL0.
//!
//! Under `-icount shift=0` every instruction takes 1 ns. The timer's
//! counter ticks more coarsely (62.5 MHz: 16 instructions a tick on
//! cortex-a72), so the timer measurement calibrates: it waits for a counter
//! edge, reads PMCCNTR_EL0 (which counts this vCPU's instructions, EL2
//! included) right there, and so knows the cycle-counter value at which the
//! counter reaches the compare value; the IRQ vector's first instruction
//! reads PMCCNTR_EL0 again. The other vCPU is off, so nothing else advances
//! the machine's time. The SGI measurement spans two vCPUs and uses the
//! counter itself (resolution: one tick).
//!
//! The IRQ entry of the bench's own vector table stamps both counters first
//! thing, silences the timer, acknowledges and ends the interrupt and sets
//! x11 for the loop that waits for it.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use tessera_guest::{cpu, gic, smp};

/// The virtual timer PPI.
const VTIMER: u32 = 27;
/// The SGI measured.
const SGI: u32 = 1;
/// Repetitions; the minimum is reported (icount makes them near-identical).
const REPS: u32 = 64;

/// PMCCNTR_EL0 read by the IRQ vector's first instruction.
#[no_mangle]
static BENCH_IRQ_CYCLES: AtomicU64 = AtomicU64::new(0);
/// CNTVCT_EL0 read right after.
#[no_mangle]
static BENCH_IRQ_STAMP: AtomicU64 = AtomicU64::new(0);
/// vCPU 1's state for the SGI measurement: 1 ready, 2 stop.
static RECEIVER: AtomicU64 = AtomicU64::new(0);
/// SGIs vCPU 1 took.
static RECEIVED: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
    .section .text.bench_vectors, "ax"
    .balign 0x800
    .global __bench_vectors
__bench_vectors:
    .rept 5
    .balign 0x80
    b       .
    .endr
    // Current EL, SP_ELx, IRQ.
    .balign 0x80
    mrs     x9, pmccntr_el0
    adrp    x10, BENCH_IRQ_CYCLES
    add     x10, x10, :lo12:BENCH_IRQ_CYCLES
    str     x9, [x10]
    mrs     x9, cntvct_el0
    adrp    x10, BENCH_IRQ_STAMP
    add     x10, x10, :lo12:BENCH_IRQ_STAMP
    str     x9, [x10]
    // Silence the (level-triggered) timer before ending the interrupt, or
    // it fires again at once.
    msr     cntv_ctl_el0, xzr
    isb
    mrs     x10, icc_iar1_el1
    msr     icc_eoir1_el1, x10
    mov     x11, #1
    eret
    .rept 10
    .balign 0x80
    b       .
    .endr
"#
);

extern "C" {
    fn __bench_vectors();
}

/// Installs the bench vector table, returning the previous VBAR_EL1.
fn install_vectors() -> u64 {
    let old: u64;
    // SAFETY: the table above handles the IRQ this module unmasks; every
    // other exception parks the vCPU (never expected while installed).
    unsafe {
        asm!("mrs {}, vbar_el1", out(reg) old);
        asm!("msr vbar_el1, {}", "isb", in(reg) __bench_vectors as *const () as u64);
    }
    old
}

fn restore_vectors(old: u64) {
    // SAFETY: puts back the runtime's vector table.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) old) };
}

/// Spins (or waits in WFI) with IRQs unmasked until the vector sets x11.
fn wait_for_irq(wfi: bool) {
    // SAFETY: x9-x11 are the vector's scratch registers, declared clobbered.
    unsafe {
        if wfi {
            // IRQs stay masked around the WFI (it wakes for a pending
            // interrupt anyway), so none is taken between the check and it.
            asm!(
                "mov x11, #0",
                "1: wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                "cbz x11, 1b",
                out("x9") _, out("x10") _, out("x11") _,
                options(nostack),
            );
        } else {
            asm!(
                "mov x11, #0",
                "msr daifclr, #2",
                "1: cbz x11, 1b",
                "msr daifset, #2",
                out("x9") _, out("x10") _, out("x11") _,
                options(nostack),
            );
        }
    }
}

/// Nanoseconds (= instructions under icount shift=0) per counter tick.
fn ns_per_tick() -> u64 {
    match cpu::cntfrq() {
        0 => 16,
        f => (1_000_000_000 / f).max(1),
    }
}

/// Virtual-timer latency in instructions (minimum over the repetitions),
/// the vCPU spinning (`wfi` false) or idle in WFI.
pub fn vtimer(wfi: bool) -> u64 {
    gic::init_this_cpu();
    gic::enable_private(VTIMER, 0x80);
    let old = install_vectors();
    let tick = ns_per_tick();
    let mut best = u64::MAX;
    for _ in 0..REPS {
        let cval = cpu::cntvct() + 64;
        cpu::set_cntv_cval(cval);
        cpu::set_cntv_ctl(cpu::CNTV_CTL_ENABLE);
        let (edge, edge_cycles): (u64, u64);
        // Wait for a counter edge, read the cycle counter there, then wait
        // for the interrupt (spinning, or in WFI with IRQs masked around it
        // so none is taken between the check and the WFI).
        macro_rules! calibrate_then_wait {
            ($($wait:literal),*) => {
                // SAFETY: reads the counters; x9-x11 are the vector's scratch
                // registers, declared clobbered.
                unsafe {
                    asm!(
                        "mrs {c0}, cntvct_el0",
                        "2: mrs {e}, cntvct_el0",
                        "cmp {e}, {c0}",
                        "b.eq 2b",
                        "mrs {p}, pmccntr_el0",
                        "mov x11, #0",
                        $($wait,)*
                        c0 = out(reg) _, e = out(reg) edge, p = out(reg) edge_cycles,
                        out("x9") _, out("x10") _, out("x11") _,
                        options(nostack),
                    )
                }
            };
        }
        if wfi {
            calibrate_then_wait!(
                "1: wfi",
                "msr daifclr, #2",
                "isb",
                "msr daifset, #2",
                "cbz x11, 1b"
            );
        } else {
            calibrate_then_wait!("msr daifclr, #2", "1: cbz x11, 1b", "msr daifset, #2");
        }
        // The cycle count when the counter reached `cval`: the edge was
        // seen 1-2 instructions before the PMCCNTR read.
        let deadline = edge_cycles + (cval - edge) * tick - 1;
        let at_vector = BENCH_IRQ_CYCLES.load(Ordering::Relaxed);
        best = best.min(at_vector.wrapping_sub(deadline));
    }
    restore_vectors(old);
    best
}

fn receiver(_: u64) -> ! {
    install_vectors();
    gic::init_this_cpu();
    gic::enable_private(SGI, 0x80);
    while RECEIVER.load(Ordering::Relaxed) != 2 {
        RECEIVER.store(1, Ordering::Relaxed);
        cpu::dmb();
        wait_for_irq(true);
        RECEIVED.store(RECEIVED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        cpu::dmb();
    }
    tessera_guest::psci::cpu_off();
    loop {
        cpu::wfe();
    }
}

/// SGI latency from vCPU 0's ICC_SGI1R_EL1 write to the IRQ vector of vCPU 1
/// (idle in WFI), in
/// instructions (minimum over the repetitions); None without a second vCPU.
pub fn sgi() -> Option<u64> {
    if smp::start_cpu(1, receiver, 0) != 0 {
        return None;
    }
    let mut best = u64::MAX;
    for rep in 0..REPS as u64 {
        if !tessera_guest::time::wait_until(1000, || {
            RECEIVER.load(Ordering::Relaxed) == 1 && RECEIVED.load(Ordering::Relaxed) == rep
        }) {
            return None;
        }
        let sent = cpu::cntvct();
        gic::send_sgi(SGI, 0b10, 0, false);
        if !tessera_guest::time::wait_until(1000, || RECEIVED.load(Ordering::Relaxed) > rep) {
            return None;
        }
        let stamp = BENCH_IRQ_STAMP.load(Ordering::Relaxed);
        best = best.min(stamp.wrapping_sub(sent));
    }
    RECEIVER.store(2, Ordering::Relaxed);
    gic::send_sgi(SGI, 0b10, 0, false);
    Some(best * ns_per_tick())
}
