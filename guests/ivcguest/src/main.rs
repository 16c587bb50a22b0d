//! Inter-VM channel checks, run by two VMs at once (one vCPU each) over
//! the channels of `tests/configs/ivc.toml`:
//!
//! - `pingpong` (4 MiB, both `rw`): the member with index 0 ("ping") sends
//!   1,000 numbered messages, each a doorbell ring; the other ("pong")
//!   answers each from its interrupt handler's wake-up; both check every
//!   message word.
//! - `view` (4 KiB, ping `rw`, pong `ro`): half way through, pong writes
//!   its read-only view; the write must abort (only pong) and leave the
//!   memory unchanged while ping carries on.
//!
//! - Then one-way notification latency, in instructions, exactly: each
//!   side stamps its cycle counter (PMCCNTR_EL0, counting EL2 too; under
//!   `-icount shift=0` one cycle is one instruction) right before its RING
//!   write, and its IRQ vector stamps it in its second instruction (this
//!   guest's own vector table, which hands every exception on to the
//!   common one). The two cores' counters differ by an unknown constant,
//!   so with both waiting in WFI the notification is measured both ways
//!   with the same instructions on each side: the offset cancels in the
//!   sum, half of which is the one-way latency, and half the difference is
//!   the offset, with which pong's spinning case (one way) is measured.
//!   Ping prints `BENCH ivc-latency-<wfi|spin> <n> instructions` (the
//!   minimum of the repetitions; `.5` when the two ways differ by one).
//!
//! - Last, pong resets its own VM (PSCI SYSTEM_RESET); on its second boot
//!   it finds the channel as it was, and one more ring each way works.
//!
//! Prints `TEST <name>: PASS|FAIL <detail>` lines and `RESULT: ...`, then
//! powers its VM off. See docs/IVC.md for the doorbell register map.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tessera_guest::exception::{guarded, probe_write32, set_irq_handler};
use tessera_guest::gic::{self, gicd, GICD_BASE};
use tessera_guest::{cpu, println, psci, time};

tessera_guest::entry!(main);

/// `pingpong`: shared memory, doorbell and its interrupt (the same in both
/// VMs).
const SHM: u64 = 0x5000_0000;
const SHM_SIZE: u64 = 0x40_0000;
const BELL: u64 = 0x0a80_0000;
const BELL_IRQ: u32 = 48;
/// `view`: ping writes it, pong only reads it.
const VIEW: u64 = 0x5100_0000;
const VIEW_BELL: u64 = 0x0a80_1000;

/// The doorbell page's registers (the hypervisor's ABI).
use tessera_abi::doorbell as reg;

/// Word offsets in `pingpong`.
const READY: u64 = 0; // pong: its interrupt is enabled
const SEQ: u64 = 1; // ping: message number
const REPLY: u64 = 2; // pong: the number it answers
const BODY: u64 = 16; // 8 words of ping's payload
const ANSWER: u64 = 32; // 8 words of pong's payload
const LAT_READY: u64 = 66; // pong: number of the repetition it waits for
/// Latency stamps (8-byte aligned doublewords in `pingpong`).
const LAT_A: u64 = SHM + 70 * 4; // ping: cycle counter before its ring
const LAT_B: u64 = SHM + 72 * 4; // pong: cycle counter at its IRQ vector
const LAT_C: u64 = SHM + 74 * 4; // pong: cycle counter before its ring back
const LAT_REPS: u32 = 32;
const BOOTS: u64 = 67; // pong: 1 once it has reset itself
const READY_AGAIN: u64 = 68; // pong, second boot: its interrupt is enabled
const READY_MAGIC: u32 = 0x5245_4459;
const LAST_WORD_MAGIC: u32 = 0xc0ff_ee42;
const VIEW_MAGIC: u32 = 0x7669_6577;

const ROUNDS: u32 = 1000;
/// A channel of this size is the Linux echo channel
/// (`tests/configs/ivc-linux.toml`): answer `ECHO_ROUNDS` messages.
const ECHO_SIZE: u64 = 0x1_0000;
const ECHO_ROUNDS: u32 = 20;
const TIMEOUT_MS: u64 = 5_000;

/// Doorbell interrupts taken, and the PENDING bits they acknowledged.
static IRQS: AtomicU32 = AtomicU32::new(0);
static SEEN: AtomicU32 = AtomicU32::new(0);
static OTHER_IRQS: AtomicU32 = AtomicU32::new(0);
/// Cycle counter at the last IRQ vector entry, written by the vector.
static IRQ_STAMP: AtomicU64 = AtomicU64::new(0);

// This guest's vector table: every slot branches to the same slot of the
// common table (`tessera_guest::exception`), except that the IRQ slot
// (current EL, SP_ELx) first stamps the cycle counter into
// `IRQ_STAMP`: the latency bench ends at the first instruction of the IRQ
// path, not after the common vector has saved 31 registers. The stamp is
// the second instruction (one register has to be free for it); exception
// entry is context-synchronising, so it needs no ISB.
global_asm!(
    r#"
    .macro TO_COMMON index
    .balign 0x80
    b       __tessera_vectors + \index * 0x80
    .endm

    .section .text.ivc_vectors, "ax"
    .balign 0x800
    .global ivcguest_vectors
ivcguest_vectors:
    TO_COMMON 0
    TO_COMMON 1
    TO_COMMON 2
    TO_COMMON 3
    TO_COMMON 4
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, pmccntr_el0
    adrp    x1, {stamp}
    str     x0, [x1, :lo12:{stamp}]
    ldp     x0, x1, [sp], #16
    b       __tessera_vectors + 5 * 0x80
    TO_COMMON 6
    TO_COMMON 7
    TO_COMMON 8
    TO_COMMON 9
    TO_COMMON 10
    TO_COMMON 11
    TO_COMMON 12
    TO_COMMON 13
    TO_COMMON 14
    TO_COMMON 15
"#,
    stamp = sym IRQ_STAMP,
);

/// Switches this vCPU to [`ivcguest_vectors`].
fn install_vectors() {
    // SAFETY: the table forwards every exception to the common vectors,
    // which stay in place; only the IRQ slot adds a store to `IRQ_STAMP`.
    unsafe {
        asm!(
            "adrp {t}, ivcguest_vectors",
            "add {t}, {t}, :lo12:ivcguest_vectors",
            "msr vbar_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// Stamps the cycle counter into `slot`, rings `peer` and sleeps until an
/// interrupt, which is taken right after: IRQs masked by the caller,
/// unmasked on return. Both sides of the latency bench ring through this
/// one sequence, so both directions run the same instructions.
#[inline(never)]
fn stamp_ring_sleep(slot: u64, peer: u32) {
    // SAFETY: `slot` is an aligned doubleword of the channel, the store to
    // the doorbell is its RING register; WFI and the unmask only wait.
    unsafe {
        asm!(
            "mrs {t}, pmccntr_el0",
            "str {t}, [{slot}]",
            "dmb sy",
            "str {peer:w}, [{bell}]",
            "wfi",
            "msr daifclr, #2",
            "isb",
            t = out(reg) _,
            slot = in(reg) slot,
            peer = in(reg) peer,
            bell = in(reg) BELL + reg::RING,
            options(nostack),
        )
    };
}

/// Sleeps until an interrupt, taken right after (IRQs masked by the
/// caller, unmasked on return): the receiving end of [`stamp_ring_sleep`].
#[inline(never)]
fn sleep_for_irq() {
    // SAFETY: only waits and unmasks IRQs.
    unsafe { asm!("wfi", "msr daifclr, #2", "isb", options(nomem, nostack)) };
}

fn rd64(addr: u64) -> u64 {
    // SAFETY: an aligned doubleword of this VM's channel memory.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn wr64(addr: u64, v: u64) {
    // SAFETY: as `rd64`, writable for this VM.
    unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
}

/// Twice a latency (to keep the half of an odd sum) as `n` or `n.5`.
struct Halves(i64);

impl core::fmt::Display for Halves {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (whole, half) = (self.0.div_euclid(2), self.0.rem_euclid(2));
        if half == 0 {
            write!(f, "{}", whole)
        } else {
            write!(f, "{}.5", whole)
        }
    }
}

fn rd(addr: u64) -> u32 {
    // SAFETY: an aligned word of this VM's channel memory or doorbell.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn wr(addr: u64, v: u32) {
    // SAFETY: as `rd`, writable for this VM.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn shm(word: u64) -> u64 {
    SHM + word * 4
}

fn payload(seq: u32, i: u32, salt: u32) -> u32 {
    seq.wrapping_mul(0x9e37_79b9) ^ i.wrapping_mul(0x85eb_ca6b) ^ salt
}

fn irq_handler() {
    let intid = gic::ack();
    if intid >= 1020 {
        return;
    }
    if intid == BELL_IRQ {
        let pending = rd(BELL + reg::PENDING);
        wr(BELL + reg::ACK, pending);
        SEEN.store(SEEN.load(Ordering::Relaxed) | pending, Ordering::Relaxed);
        IRQS.store(IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        OTHER_IRQS.store(OTHER_IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    cpu::dmb();
    gic::eoi(intid);
}

/// Sleeps until the doorbell interrupt count reaches `want`.
fn wait_irq(want: u32) -> bool {
    time::wait_until(TIMEOUT_MS, || {
        // Check, then sleep, with IRQs masked (see irqguest).
        gic::mask_irq();
        if IRQS.load(Ordering::Relaxed) < want {
            cpu::wfi();
        }
        gic::unmask_irq();
        IRQS.load(Ordering::Relaxed) >= want
    })
}

fn ring(peer: u32) {
    // The message is in place before the peer can see the ring.
    cpu::dmb();
    wr(BELL + reg::RING, peer);
}

struct Tally {
    pass: u32,
    fail: u32,
}

impl Tally {
    fn report(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments) {
        if ok {
            self.pass += 1;
            println!("TEST {}: PASS", name);
        } else {
            self.fail += 1;
            println!("TEST {}: FAIL {}", name, detail);
        }
    }
}

fn main() -> ! {
    let mut t = Tally { pass: 0, fail: 0 };
    gic::init_this_cpu();
    set_irq_handler(irq_handler);
    // The doorbell SPI: priority, group 1, enabled (routed to vCPU 0).
    let n = u64::from(BELL_IRQ / 32) * 4;
    // SAFETY: the VM's own distributor registers.
    unsafe {
        core::ptr::write_volatile(
            (GICD_BASE + gicd::IPRIORITYR + u64::from(BELL_IRQ)) as *mut u8,
            0x80,
        );
        gic::write32(GICD_BASE + 0x80 + n, 1 << (BELL_IRQ % 32));
        gic::write32(GICD_BASE + gicd::ISENABLER + n, 1 << (BELL_IRQ % 32));
    }
    gic::unmask_irq();

    let me = rd(BELL + reg::SELF);
    let size = u64::from(rd(BELL + reg::SIZE_LO)) | u64::from(rd(BELL + reg::SIZE_HI)) << 32;
    let echo_mode = size == ECHO_SIZE;
    t.report(
        "doorbell-identity",
        rd(BELL + reg::CHANNEL_ID) == 0
            && rd(BELL + reg::MEMBERS) == 2
            && me < 2
            && (echo_mode
                || (size == SHM_SIZE
                    && rd(VIEW_BELL + reg::CHANNEL_ID) == 1
                    && rd(VIEW_BELL + reg::SELF) == me)),
        format_args!("self={} size={:#x}", me, size),
    );
    if echo_mode {
        echo(&mut t, me);
        println!("RESULT: pass={} fail={}", t.pass, t.fail);
        psci::system_off()
    }
    let first_boot = rd(shm(BOOTS)) == 0;
    if first_boot {
        // For the latency bench (ping and pong on their first boot only;
        // the VMs have `pmu = true`): the cycle counter, and the vectors
        // whose IRQ slot reads it (the echo VM and pong's second boot keep
        // the common ones).
        cpu::enable_cycle_counter();
        install_vectors();
    }
    if me == 0 {
        ping(&mut t);
    } else if first_boot {
        pong(&mut t);
    } else {
        pong_after_reset(&mut t);
    }
    t.report(
        "no-stray-interrupts",
        OTHER_IRQS.load(Ordering::Relaxed) == 0,
        format_args!("{} other interrupts", OTHER_IRQS.load(Ordering::Relaxed)),
    );
    println!("RESULT: pass={} fail={}", t.pass, t.fail);
    if me == 1 && first_boot {
        wr(shm(BOOTS), 1);
        cpu::dmb();
        psci::system_reset()
    }
    psci::system_off()
}

fn ping(t: &mut Tally) {
    // Memory is scrubbed at boot; the far end of the 4 MiB window works.
    let last = SHM + SHM_SIZE - 4;
    t.report(
        "channel-scrubbed",
        rd(last) == 0 && rd(VIEW) == 0,
        format_args!("last word {:#x}", rd(last)),
    );
    wr(last, LAST_WORD_MAGIC);
    wr(VIEW, VIEW_MAGIC);
    let ready = time::wait_until(TIMEOUT_MS, || rd(shm(READY)) == READY_MAGIC);
    t.report("peer-ready", ready, format_args!("pong never got ready"));
    if !ready {
        return;
    }
    let mut bad = 0u32;
    let mut first_bad = 0u32;
    for seq in 1..=ROUNDS {
        for i in 0..8 {
            wr(shm(BODY + u64::from(i)), payload(seq, i, 0));
        }
        wr(shm(SEQ), seq);
        ring(1);
        if !wait_irq(seq) {
            bad += 1;
            first_bad = seq;
            break;
        }
        let ok = rd(shm(REPLY)) == seq
            && (0..8).all(|i| rd(shm(ANSWER + u64::from(i))) == payload(seq, i, 0xa5a5_a5a5));
        if !ok {
            if bad == 0 {
                first_bad = seq;
            }
            bad += 1;
        }
    }
    t.report(
        "ping-1000-rounds",
        bad == 0 && SEEN.load(Ordering::Relaxed) == 0b10,
        format_args!(
            "{} bad rounds, first {} (irqs {}, pending seen {:#b})",
            bad,
            first_bad,
            IRQS.load(Ordering::Relaxed),
            SEEN.load(Ordering::Relaxed)
        ),
    );
    t.report(
        "view-unchanged-by-ro-peer",
        rd(VIEW) == VIEW_MAGIC,
        format_args!("view word {:#x}", rd(VIEW)),
    );
    // Latency: for each repetition wait until pong waits, let it settle
    // (into WFI), then stamp, ring and sleep at once: QEMU runs its cores
    // in turn and switches to pong's when this one halts, so whatever ping
    // ran after its ring would count as notification latency, which on
    // hardware it is not (the cores run side by side). Pong's answer
    // wakes it. First both waiting in WFI, measured both ways (2x the
    // latency in the sum, 2x pong's counter offset in the difference).
    let mut ok = true;
    let (mut wfi2, mut offset2) = (i64::MAX, None);
    // Twice the counters' offset, lowest and highest seen: a constant, or
    // the measurement is not what it claims.
    let (mut off_lo, mut off_hi) = (i64::MAX, i64::MIN);
    for rep in 1..=LAT_REPS {
        ok &= time::wait_until(TIMEOUT_MS, || rd(shm(LAT_READY)) == rep);
        time::wait_until(1, || false);
        gic::mask_irq();
        stamp_ring_sleep(LAT_A, 1);
        ok &= wait_irq(ROUNDS + rep);
        let d = IRQ_STAMP.load(Ordering::Relaxed);
        let forward = rd64(LAT_B).wrapping_sub(rd64(LAT_A)) as i64;
        let back = d.wrapping_sub(rd64(LAT_C)) as i64;
        off_lo = off_lo.min(forward - back);
        off_hi = off_hi.max(forward - back);
        if forward + back < wfi2 {
            wfi2 = forward + back;
            offset2 = Some(forward - back);
        }
    }
    // Pong slept after its last answer: wake it for the spinning half.
    ring(1);
    // Then pong spinning, one way, corrected by the offset.
    let mut spin2 = i64::MAX;
    for rep in LAT_REPS + 1..=2 * LAT_REPS {
        ok &= time::wait_until(TIMEOUT_MS, || rd(shm(LAT_READY)) == rep);
        time::wait_until(1, || false);
        gic::mask_irq();
        stamp_ring_sleep(LAT_A, 1);
        ok &= wait_irq(ROUNDS + rep);
        let forward = rd64(LAT_B).wrapping_sub(rd64(LAT_A)) as i64;
        if let Some(o2) = offset2 {
            spin2 = spin2.min(2 * forward - o2);
        }
    }
    if offset2.is_some() {
        println!("BENCH ivc-latency-wfi {} instructions", Halves(wfi2));
        println!("BENCH ivc-latency-spin {} instructions", Halves(spin2));
        // Under `-icount` the two ways run the same instructions in every
        // repetition, so the difference is the same each time (`make
        // bench` requires 0 here; without icount the counters follow
        // host time and it varies).
        println!(
            "BENCH ivc-offset-spread {} instructions",
            Halves(off_hi - off_lo)
        );
    }
    t.report(
        "latency-runs",
        ok && offset2.is_some(),
        format_args!("pong did not answer every repetition"),
    );
    // Pong resets its VM; the channel stays, and it answers once more.
    let back = time::wait_until(4 * TIMEOUT_MS, || rd(shm(READY_AGAIN)) == READY_MAGIC);
    let want = ROUNDS + 2 * LAT_REPS + 1;
    if back {
        wr(shm(SEQ), 0xabcd);
        ring(1);
    }
    t.report(
        "peer-reset-keeps-channel",
        back && wait_irq(want) && rd(shm(REPLY)) == 0xabcd,
        format_args!(
            "ready {} irqs {} reply {:#x}",
            back,
            IRQS.load(Ordering::Relaxed),
            rd(shm(REPLY))
        ),
    );
}

/// Pong's second boot: the channel still holds what both VMs wrote, and
/// the doorbells still work both ways.
fn pong_after_reset(t: &mut Tally) {
    let kept = rd(SHM + SHM_SIZE - 4) == LAST_WORD_MAGIC
        && rd(VIEW) == VIEW_MAGIC
        && rd(shm(REPLY)) == ROUNDS;
    t.report(
        "channel-survives-reset",
        kept,
        format_args!(
            "last word {:#x} reply {}",
            rd(SHM + SHM_SIZE - 4),
            rd(shm(REPLY))
        ),
    );
    wr(shm(READY_AGAIN), READY_MAGIC);
    let rung = wait_irq(1) && rd(shm(SEQ)) == 0xabcd;
    if rung {
        wr(shm(REPLY), 0xabcd);
        ring(0);
    }
    t.report(
        "doorbell-after-reset",
        rung,
        format_args!(
            "irqs {} seq {:#x}",
            IRQS.load(Ordering::Relaxed),
            rd(shm(SEQ))
        ),
    );
}

fn pong(t: &mut Tally) {
    wr(shm(READY), READY_MAGIC);
    cpu::dmb();
    let mut bad = 0u32;
    let mut first_bad = 0u32;
    for seq in 1..=ROUNDS {
        if !wait_irq(seq) {
            bad += 1;
            first_bad = seq;
            break;
        }
        let ok = rd(shm(SEQ)) == seq
            && (0..8).all(|i| rd(shm(BODY + u64::from(i))) == payload(seq, i, 0));
        if !ok {
            if bad == 0 {
                first_bad = seq;
            }
            bad += 1;
        }
        if seq == 1 {
            let last = SHM + SHM_SIZE - 4;
            t.report(
                "far-end-of-4mib-channel",
                rd(last) == LAST_WORD_MAGIC,
                format_args!("last word {:#x}", rd(last)),
            );
        }
        if seq == ROUNDS / 2 {
            check_read_only_view(t);
        }
        for i in 0..8 {
            wr(shm(ANSWER + u64::from(i)), payload(seq, i, 0xa5a5_a5a5));
        }
        wr(shm(REPLY), seq);
        ring(0);
    }
    latency_both_in_wfi(LAT_REPS);
    latency_spinning(LAT_REPS);
    t.report(
        "pong-1000-rounds",
        bad == 0
            && SEEN.load(Ordering::Relaxed) == 0b01
            // The latency repetitions, and ping's wake-up between them.
            && IRQS.load(Ordering::Relaxed) == ROUNDS + 2 * LAT_REPS + 1,
        format_args!(
            "{} bad rounds, first {} (irqs {}, pending seen {:#b})",
            bad,
            first_bad,
            IRQS.load(Ordering::Relaxed),
            SEEN.load(Ordering::Relaxed)
        ),
    );
}

/// Echo for a Linux peer (guests/linux/init): each ring carries a number in
/// SEQ, answered in REPLY with number + 1000 and a ring back.
fn echo(t: &mut Tally, me: u32) {
    let mut ok = 0;
    for n in 1..=ECHO_ROUNDS {
        // Linux boots for a while before its first message.
        if !time::wait_until(600_000, || IRQS.load(Ordering::Relaxed) >= n) {
            break;
        }
        let seq = rd(shm(SEQ));
        ok += u32::from(seq == n);
        wr(shm(REPLY), seq.wrapping_add(1000));
        ring(1 - me);
    }
    t.report(
        "linux-echo",
        ok == ECHO_ROUNDS,
        format_args!("{} of {} messages in order", ok, ECHO_ROUNDS),
    );
}

/// Pong's side of the measurement both ways (repetitions 1..=`reps`):
/// sleep in WFI for ping's ring (its IRQ vector stamps `LAT_B`), then
/// answer through the same stamp-ring-sleep sequence as ping, which wakes
/// on the next repetition's ring (after the last: ping's wake-up ring).
fn latency_both_in_wfi(reps: u32) {
    gic::mask_irq();
    wr(shm(LAT_READY), 1);
    let deadline = time::us_to_ticks(TIMEOUT_MS * 1000) + cpu::cntvct();
    for rep in 1..=reps + 1 {
        while IRQS.load(Ordering::Relaxed) < ROUNDS + rep && cpu::cntvct() < deadline {
            sleep_for_irq();
            gic::mask_irq();
        }
        if rep > reps {
            break;
        }
        wr64(LAT_B, IRQ_STAMP.load(Ordering::Relaxed));
        if rep < reps {
            wr(shm(LAT_READY), rep + 1);
        }
        stamp_ring_sleep(LAT_C, 0);
        gic::mask_irq();
    }
    gic::unmask_irq();
}

/// Pong's side of the one-way measurement while it spins with IRQs
/// unmasked (repetitions `reps + 1..=2 * reps`): the stamp, then a plain
/// answer.
fn latency_spinning(reps: u32) {
    for rep in reps + 1..=2 * reps {
        // Ping's wake-up ring came before the first of these.
        let want = ROUNDS + rep + 1;
        wr(shm(LAT_READY), rep);
        let start = cpu::cntvct();
        let limit = time::us_to_ticks(TIMEOUT_MS * 1000);
        while IRQS.load(Ordering::Relaxed) < want && cpu::cntvct() - start < limit {
            core::hint::spin_loop();
        }
        wr64(LAT_B, IRQ_STAMP.load(Ordering::Relaxed));
        ring(0);
    }
}

/// The `ro` view reads what ping wrote; a write to it aborts and changes
/// nothing.
fn check_read_only_view(t: &mut Tally) {
    let before = rd(VIEW);
    // SAFETY: an aligned word of the view; the write faults inside
    // `guarded`, which skips it.
    let ((), fault) = guarded(|| unsafe { probe_write32(VIEW, 0xdead_beef) });
    let after = rd(VIEW);
    let aborted = fault.is_some_and(|f| f.ec() == 0x25 && f.is_write() && f.far == VIEW);
    t.report(
        "ro-view-write-aborts",
        before == VIEW_MAGIC && after == VIEW_MAGIC && aborted,
        format_args!("before {:#x} after {:#x} fault {:?}", before, after, fault),
    );
}
