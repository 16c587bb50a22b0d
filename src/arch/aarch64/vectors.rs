//! EL2 exception vectors. A trap from the guest saves x0-x30 on this core's
//! EL2 stack (the [`super::trap::GuestRegs`] frame), calls the Rust handler
//! and restores; an interrupt saves only the caller-saved registers of that
//! frame (its handler never reads the frame). Nothing else is saved: each core runs one vCPU forever, so
//! EL1 system registers and FP/SIMD state stay live in the hardware (the
//! hypervisor is built soft-float and never touches FP registers), and
//! ELR_EL2/SPSR_EL2 are only read when a handler needs them.
//!
//! SError boundaries: on every exit from the guest, after a DSB, SError is
//! unmasked and one still pending from the guest's accesses is taken in a
//! one-instruction window and handed to the guest SError handler (its VM's
//! policy). SError then stays unmasked while the hypervisor handles the
//! trap, so one its own work raises is taken there, at EL2 outside the
//! window: it is the hypervisor's and stops the machine, instead of being
//! taken by, and blamed on, the guest about to run.
//!
//! An exception taken at EL2 itself is a hypervisor bug and fatal: it
//! switches to this core's emergency stack first (see [`super::hyp_fault`]),
//! so a stack overflow into a guard page ends in one report, not in a
//! fault of the fault handler's own register save, forever.

use core::arch::global_asm;

global_asm!(
    r#"
// The frame (32 slots) and x0-x17 in it: the start of both saves.
.macro SAVE_X0_X17
    stp     x0, x1, [sp, #-(8 * 32)]!
    stp     x2, x3, [sp, #(8 * 2)]
    stp     x4, x5, [sp, #(8 * 4)]
    stp     x6, x7, [sp, #(8 * 6)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(8 * 10)]
    stp     x12, x13, [sp, #(8 * 12)]
    stp     x14, x15, [sp, #(8 * 14)]
    stp     x16, x17, [sp, #(8 * 16)]
.endm

// x2-x17 back from the frame: the middle of both restores.
.macro LOAD_X2_X17
    ldp     x2, x3, [sp, #(8 * 2)]
    ldp     x4, x5, [sp, #(8 * 4)]
    ldp     x6, x7, [sp, #(8 * 6)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(8 * 10)]
    ldp     x12, x13, [sp, #(8 * 12)]
    ldp     x14, x15, [sp, #(8 * 14)]
    ldp     x16, x17, [sp, #(8 * 16)]
.endm

.macro SAVE_GUEST_REGS
    SAVE_X0_X17
    stp     x18, x19, [sp, #(8 * 18)]
    stp     x20, x21, [sp, #(8 * 20)]
    stp     x22, x23, [sp, #(8 * 22)]
    stp     x24, x25, [sp, #(8 * 24)]
    stp     x26, x27, [sp, #(8 * 26)]
    stp     x28, x29, [sp, #(8 * 28)]
    str     x30, [sp, #(8 * 30)]
.endm

// The guest-exit SError boundary, inline (3 instructions): the guest's
// accesses complete (DSB), SError is unmasked, and an SError they left
// pending is taken at the latest right after the ISB — in the window the
// EL2 SError vector recognises by its offset in the slot (it is the
// guest's). From there on SError stays unmasked until the ERET: one the
// hypervisor's own work raises is taken where it happens, outside the
// window, and is the hypervisor's.
.macro VECTOR handler
.balign 0x80
    SAVE_GUEST_REGS
    dsb     sy
    msr     daifclr, #4
    isb                             // at SERROR_WINDOW (checked at boot)
    mov     x0, sp
    bl      \handler
    b       tessera_return_to_guest
.endm

// An interrupt from the guest: the same frame, but only the registers a
// Rust function may clobber (x0-x18, x30) are saved; x19-x29 stay live in
// the hardware, preserved by the handler as the calling convention
// requires. Nothing on the IRQ path reads the frame, and a path that does
// not come back (a parked vCPU, an SError) never restores it. Its SError
// window is at IRQ_SERROR_WINDOW.
.macro IRQ_VECTOR handler
.balign 0x80
    SAVE_X0_X17
    str     x18, [sp, #(8 * 18)]
    str     x30, [sp, #(8 * 30)]
    dsb     sy
    msr     daifclr, #4
    isb                             // at IRQ_SERROR_WINDOW (checked at boot)
    mov     x0, sp
    bl      \handler
    b       tessera_return_from_irq
.endm

// An exception at EL2 itself: fatal. x0 names the vector for the report;
// nothing else is kept (no return).
.macro HYP_VECTOR kind
.balign 0x80
    mov     x0, #\kind
    b       tessera_hyp_exception
.endm

.section .text.vectors, "ax"
.balign 0x800
.global tessera_el2_vectors
tessera_el2_vectors:
    // Current EL with SP_EL0: never used.
    HYP_VECTOR 0
    HYP_VECTOR 1
    HYP_VECTOR 2
    HYP_VECTOR 3
    // Current EL with SP_EL2: a hypervisor bug, except an SError taken in
    // a guest-exit window: ELR_EL2 at the window's ISB or right after it,
    // in one of the lower-EL slots.
    HYP_VECTOR 4
    HYP_VECTOR 5
    HYP_VECTOR 6
.balign 0x80
    mrs     x1, elr_el2
    adr     x2, tessera_el2_vectors + 0x400
    sub     x1, x1, x2
    cmp     x1, #0x400
    b.hs    1f
    and     x1, x1, #0x7f
    sub     x2, x1, #{serror_window}
    cmp     x2, #4
    b.ls    2f
    // (SError is masked before either window, so an offset of the other
    // slot kind's window cannot be met outside a window.)
    sub     x2, x1, #{irq_serror_window}
    cmp     x2, #4
    b.hi    1f
    // The guest's: SP is still its trap frame (x0-x30, or for an IRQ the
    // caller-saved ones, saved), ESR_EL2 the SError's; the trap is
    // abandoned for the VM's SError policy, which never returns to it.
2:  b       tessera_guest_serror_late
1:  mov     x0, #7
    b       tessera_hyp_exception
    // Lower EL, AArch64.
    VECTOR tessera_guest_sync
    IRQ_VECTOR tessera_guest_irq
    IRQ_VECTOR tessera_guest_irq
    VECTOR tessera_guest_serror
    // Lower EL, AArch32 (EL0 tasks of an AArch64 guest).
    VECTOR tessera_guest_sync
    IRQ_VECTOR tessera_guest_irq
    IRQ_VECTOR tessera_guest_irq
    VECTOR tessera_guest_serror

tessera_guest_serror_late:
    mov     x0, sp
    bl      tessera_guest_serror
    b       tessera_return_to_guest

// Back from IRQ_VECTOR: the registers it saved.
tessera_return_from_irq:
    LOAD_X2_X17
    ldr     x18, [sp, #(8 * 18)]
    ldr     x30, [sp, #(8 * 30)]
    ldp     x0, x1, [sp], #(8 * 32)
    eret

.global tessera_return_to_guest
tessera_return_to_guest:
    LOAD_X2_X17
    ldp     x18, x19, [sp, #(8 * 18)]
    ldp     x20, x21, [sp, #(8 * 20)]
    ldp     x22, x23, [sp, #(8 * 22)]
    ldp     x24, x25, [sp, #(8 * 24)]
    ldp     x26, x27, [sp, #(8 * 26)]
    ldp     x28, x29, [sp, #(8 * 28)]
    ldr     x30, [sp, #(8 * 30)]
    ldp     x0, x1, [sp], #(8 * 32)
    eret

// tessera_enter_guest(stack_top, x0_value): resets this core's stack, builds
// a zeroed register frame with x0 = x0_value and erets (ELR_EL2/SPSR_EL2
// are set by the caller).
.global tessera_enter_guest
tessera_enter_guest:
    mov     sp, x0
    sub     sp, sp, #(8 * 32)
    mov     x2, sp
    mov     x3, #16
1:  stp     xzr, xzr, [x2], #16
    subs    x3, x3, #1
    b.ne    1b
    str     x1, [sp]
    b       tessera_return_to_guest

// A fatal exception at EL2 (x0 = the vector kind). The stack may be what
// faulted (an overflow into its guard page), so nothing touches it: this
// core's index is looked up from MPIDR_EL1 in TESSERA_CPU_MPIDRS (boot.rs),
// its emergency stack claimed once (a fault on the emergency path parks the
// core: the first report is the one that matters), and the Rust report
// runs there with (kind, SP at the fault, core index).
tessera_hyp_exception:
    mov     x1, sp
    mrs     x2, mpidr_el1
    mov     x3, #0xffffff           // Aff2-0
    movk    x3, #0xff, lsl #32      // Aff3
    and     x2, x2, x3
    adrp    x3, TESSERA_CPU_MPIDRS
    add     x3, x3, :lo12:TESSERA_CPU_MPIDRS
    mov     x4, #0
1:  ldr     x5, [x3, x4, lsl #3]
    cmp     x5, x2
    b.eq    2f
    add     x4, x4, #1
    cmp     x4, #{max_cpus}
    b.lo    1b
    // Not a core of the board: report on the last slot.
    mov     x4, #({max_cpus} - 1)
2:  adrp    x3, TESSERA_IN_EMERGENCY
    add     x3, x3, :lo12:TESSERA_IN_EMERGENCY
    ldrb    w5, [x3, x4]
    cbnz    w5, 9f
    mov     w5, #1
    strb    w5, [x3, x4]
    adrp    x3, TESSERA_EMERGENCY_STACKS
    add     x3, x3, :lo12:TESSERA_EMERGENCY_STACKS
    mov     x5, #{emergency_stack}
    madd    x3, x4, x5, x3
    add     sp, x3, x5
    mov     x2, x4
    bl      tessera_hyp_fault
9:  wfe
    b       9b
"#,
    max_cpus = const crate::config::MAX_CPUS,
    serror_window = const SERROR_WINDOW,
    irq_serror_window = const IRQ_SERROR_WINDOW,
    emergency_stack = const super::hyp_fault::EMERGENCY_STACK_SIZE,
);

/// Offset of the guest-exit SError window's ISB in a vector slot: after the
/// 16 stores of the register frame, the DSB and the unmask.
const SERROR_WINDOW: usize = 16 * 4 + 2 * 4;

/// The same in an IRQ/FIQ slot, which saves 11 registers (x0-x18, x30) in
/// 11 stores.
const IRQ_SERROR_WINDOW: usize = 11 * 4 + 2 * 4;

/// `MSR DAIFClr, #4` and `ISB`, as encoded.
const MSR_DAIFCLR_A: u32 = 0xd503_44ff;
const ISB: u32 = 0xd503_3fdf;

/// Whether every lower-EL vector slot has its SError window where the EL2
/// SError vector looks for it (the unmask, then the ISB at
/// [`SERROR_WINDOW`], or [`IRQ_SERROR_WINDOW`] in IRQ and FIQ slots): a
/// changed save sequence must fail the boot, not misattribute an SError.
pub fn serror_windows_in_place() -> bool {
    let base = tessera_el2_vectors as *const () as usize + 0x400;
    (0..8).all(|slot| {
        // Slots 1 and 2 of each group of four are IRQ and FIQ.
        let window = if slot % 4 == 1 || slot % 4 == 2 {
            IRQ_SERROR_WINDOW
        } else {
            SERROR_WINDOW
        };
        let isb = base + slot * 0x80 + window;
        // SAFETY: reads two words of the vector table in the image's text,
        // which the EL2 map keeps readable.
        let (unmask, barrier) = unsafe {
            (
                core::ptr::read_volatile((isb - 4) as *const u32),
                core::ptr::read_volatile(isb as *const u32),
            )
        };
        unmask == MSR_DAIFCLR_A && barrier == ISB
    })
}

extern "C" {
    /// The vector table (VBAR_EL2).
    pub fn tessera_el2_vectors();
    /// Resets the stack to `stack_top` and enters the guest with the given
    /// x0 and all other general-purpose registers zero.
    pub fn tessera_enter_guest(stack_top: u64, x0: u64) -> !;
}
