//! EL1 exception vectors, expected-fault capture and fatal-exception reports.
//!
//! A test that expects its next access to abort wraps it in [`guarded`]: the
//! synchronous exception handler then records ESR_EL1/FAR_EL1, steps over the
//! faulting instruction (ELR_EL1 += 4) and returns. Any other exception is
//! reported as `UNEXPECTED EXCEPTION ...` and the VM is powered off.

use core::arch::{asm, global_asm};
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use crate::{cpu, println, psci, MAX_CPUS};

/// ESR_EL1.EC: data abort from the current exception level.
pub const EC_DATA_ABORT_CUR: u64 = 0x25;
/// ESR_EL1.EC: data abort from a lower exception level.
pub const EC_DATA_ABORT_LOWER: u64 = 0x24;
/// ESR_EL1.EC: unknown reason (e.g. an undefined HVC/SMC).
pub const EC_UNKNOWN: u64 = 0x00;
/// ESR_EL1 ISS bit 6 for data aborts: the access was a write.
pub const ESR_WNR: u64 = 1 << 6;

/// Registers saved on exception entry.
#[repr(C)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL1: where `eret` resumes.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    _pad: u64,
}

const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE.is_multiple_of(16));

// 16 entries of 0x80 bytes: {current EL SP0, current EL SPx, lower A64,
// lower A32} x {sync, IRQ, FIQ, SError}. Each saves x0/x1, passes its index
// in x0 and branches to the common save/restore path.
global_asm!(
    r#"
    .macro VECTOR index
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       __tessera_vector_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global __tessera_vectors
__tessera_vectors:
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15

__tessera_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    stp     x30, x2, [sp, #240]
    mrs     x2, spsr_el1
    str     x2, [sp, #256]

    mov     x1, sp
    bl      {handler}

    ldr     x2, [sp, #256]
    msr     spsr_el1, x2
    ldp     x30, x2, [sp, #240]
    msr     elr_el1, x2
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret
"#,
    frame = const FRAME_SIZE,
    handler = sym handle_exception,
);

/// Vector index of a synchronous exception from the current EL using SP_ELx.
const VECTOR_CUR_SPX_SYNC: u64 = 4;
/// Vector index of an IRQ at the current EL using SP_ELx.
const VECTOR_CUR_SPX_IRQ: u64 = 5;

/// Handler for IRQs (0 = none: an IRQ is unexpected), as a `fn()` address.
static IRQ_HANDLER: AtomicU64 = AtomicU64::new(0);

/// Installs `handler` for IRQs taken at EL1 (all vCPUs share it).
pub fn set_irq_handler(handler: fn()) {
    IRQ_HANDLER.store(handler as usize as u64, Ordering::Relaxed);
    cpu::dmb();
}

const VECTOR_NAMES: [&str; 16] = [
    "cur-sp0-sync",
    "cur-sp0-irq",
    "cur-sp0-fiq",
    "cur-sp0-serror",
    "cur-spx-sync",
    "cur-spx-irq",
    "cur-spx-fiq",
    "cur-spx-serror",
    "lower64-sync",
    "lower64-irq",
    "lower64-fiq",
    "lower64-serror",
    "lower32-sync",
    "lower32-irq",
    "lower32-fiq",
    "lower32-serror",
];

/// Per-vCPU expected-fault state; each slot is written only by its own vCPU.
struct FaultSlot {
    armed: AtomicU64,
    taken: AtomicU64,
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
}

impl FaultSlot {
    const fn new() -> Self {
        Self {
            armed: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            esr: AtomicU64::new(0),
            far: AtomicU64::new(0),
            elr: AtomicU64::new(0),
        }
    }
}

static FAULTS: [FaultSlot; MAX_CPUS] = [const { FaultSlot::new() }; MAX_CPUS];

/// A synchronous exception captured inside [`guarded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// ELR_EL1 at the time of the exception (the faulting instruction).
    pub elr: u64,
}

impl Fault {
    /// Exception class, ESR_EL1 bits 31:26.
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// For data aborts: whether the access was a write (ISS.WnR).
    pub fn is_write(&self) -> bool {
        self.esr & ESR_WNR != 0
    }
}

/// Runs `f`, capturing the first synchronous exception it raises on this vCPU.
///
/// A captured exception is skipped: execution resumes at the instruction
/// after the faulting one, so `f` should fault only in single instructions
/// whose outputs it does not trust afterwards (see [`probe_read32`]).
pub fn guarded<R>(f: impl FnOnce() -> R) -> (R, Option<Fault>) {
    let slot = &FAULTS[cpu::cpu_id()];
    slot.taken.store(0, Ordering::Relaxed);
    slot.armed.store(1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    slot.armed.store(0, Ordering::Relaxed);
    let fault = (slot.taken.load(Ordering::Relaxed) != 0).then(|| Fault {
        esr: slot.esr.load(Ordering::Relaxed),
        far: slot.far.load(Ordering::Relaxed),
        elr: slot.elr.load(Ordering::Relaxed),
    });
    (r, fault)
}

/// Loads 32 bits from `addr` with exactly one `ldr` instruction.
///
/// # Safety
/// `addr` must be 4-byte aligned, and reading it must either be harmless or
/// fault inside [`guarded`].
pub unsafe fn probe_read32(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: upheld by the caller; a single instruction so ELR += 4 skips it.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack)) };
    v
}

/// Stores 32 bits to `addr` with exactly one `str` instruction.
///
/// # Safety
/// `addr` must be 4-byte aligned, and writing it must either be harmless or
/// fault inside [`guarded`].
pub unsafe fn probe_write32(addr: u64, value: u32) {
    // SAFETY: upheld by the caller; a single instruction so ELR += 4 skips it.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack)) };
}

fn read_esr_far() -> (u64, u64) {
    let (esr, far): (u64, u64);
    // SAFETY: reading the syndrome registers has no side effects.
    unsafe {
        asm!("mrs {}, esr_el1", out(reg) esr, options(nomem, nostack, preserves_flags));
        asm!("mrs {}, far_el1", out(reg) far, options(nomem, nostack, preserves_flags));
    }
    (esr, far)
}

/// Rust side of every vector.
extern "C" fn handle_exception(index: u64, frame: &mut TrapFrame) {
    if index == VECTOR_CUR_SPX_IRQ {
        let raw = IRQ_HANDLER.load(Ordering::Relaxed);
        if raw != 0 {
            // SAFETY: stored from a `fn()` by `set_irq_handler`.
            let handler: fn() = unsafe { core::mem::transmute::<usize, fn()>(raw as usize) };
            handler();
            return;
        }
    }
    let (esr, far) = read_esr_far();
    let cpu = cpu::cpu_id();
    if index == VECTOR_CUR_SPX_SYNC && cpu < MAX_CPUS {
        let slot = &FAULTS[cpu];
        if slot.armed.load(Ordering::Relaxed) != 0 {
            slot.esr.store(esr, Ordering::Relaxed);
            slot.far.store(far, Ordering::Relaxed);
            slot.elr.store(frame.elr, Ordering::Relaxed);
            slot.taken.store(1, Ordering::Relaxed);
            // Only the first fault is captured; a second one is unexpected.
            slot.armed.store(0, Ordering::Relaxed);
            frame.elr += 4;
            return;
        }
    }
    println!(
        "UNEXPECTED EXCEPTION esr={:#x} elr={:#x} far={:#x} vector={} cpu={}",
        esr,
        frame.elr,
        far,
        VECTOR_NAMES[(index & 0xf) as usize],
        cpu
    );
    psci::system_off()
}
