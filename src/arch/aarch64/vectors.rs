//! EL2 exception vectors. A trap from the guest saves x0-x30 on this core's
//! EL2 stack (the [`super::trap::GuestRegs`] frame), calls the Rust handler
//! and restores. Nothing else is saved: each core runs one vCPU forever, so
//! EL1 system registers and FP/SIMD state stay live in the hardware (the
//! hypervisor is built soft-float and never touches FP registers), and
//! ELR_EL2/SPSR_EL2 are only read when a handler needs them.

use core::arch::global_asm;

global_asm!(
    r#"
.macro SAVE_GUEST_REGS
    sub     sp, sp, #(8 * 32)
    stp     x0, x1, [sp, #(8 * 0)]
    stp     x2, x3, [sp, #(8 * 2)]
    stp     x4, x5, [sp, #(8 * 4)]
    stp     x6, x7, [sp, #(8 * 6)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(8 * 10)]
    stp     x12, x13, [sp, #(8 * 12)]
    stp     x14, x15, [sp, #(8 * 14)]
    stp     x16, x17, [sp, #(8 * 16)]
    stp     x18, x19, [sp, #(8 * 18)]
    stp     x20, x21, [sp, #(8 * 20)]
    stp     x22, x23, [sp, #(8 * 22)]
    stp     x24, x25, [sp, #(8 * 24)]
    stp     x26, x27, [sp, #(8 * 26)]
    stp     x28, x29, [sp, #(8 * 28)]
    str     x30, [sp, #(8 * 30)]
    mov     x0, sp
.endm

.macro VECTOR handler
.balign 0x80
    SAVE_GUEST_REGS
    bl      \handler
    b       tessera_return_to_guest
.endm

.section .text.vectors, "ax"
.balign 0x800
.global tessera_el2_vectors
tessera_el2_vectors:
    // Current EL with SP_EL0: never used.
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    // Current EL with SP_EL2: a hypervisor bug.
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    VECTOR tessera_hyp_fault
    // Lower EL, AArch64.
    VECTOR tessera_guest_sync
    VECTOR tessera_guest_irq
    VECTOR tessera_guest_irq
    VECTOR tessera_guest_serror
    // Lower EL, AArch32 (EL0 tasks of an AArch64 guest).
    VECTOR tessera_guest_sync
    VECTOR tessera_guest_irq
    VECTOR tessera_guest_irq
    VECTOR tessera_guest_serror

.global tessera_return_to_guest
tessera_return_to_guest:
    ldp     x0, x1, [sp, #(8 * 0)]
    ldp     x2, x3, [sp, #(8 * 2)]
    ldp     x4, x5, [sp, #(8 * 4)]
    ldp     x6, x7, [sp, #(8 * 6)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(8 * 10)]
    ldp     x12, x13, [sp, #(8 * 12)]
    ldp     x14, x15, [sp, #(8 * 14)]
    ldp     x16, x17, [sp, #(8 * 16)]
    ldp     x18, x19, [sp, #(8 * 18)]
    ldp     x20, x21, [sp, #(8 * 20)]
    ldp     x22, x23, [sp, #(8 * 22)]
    ldp     x24, x25, [sp, #(8 * 24)]
    ldp     x26, x27, [sp, #(8 * 26)]
    ldp     x28, x29, [sp, #(8 * 28)]
    ldr     x30, [sp, #(8 * 30)]
    add     sp, sp, #(8 * 32)
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
"#
);

extern "C" {
    /// The vector table (VBAR_EL2).
    pub fn tessera_el2_vectors();
    /// Resets the stack to `stack_top` and enters the guest with the given
    /// x0 and all other general-purpose registers zero.
    pub fn tessera_enter_guest(stack_top: u64, x0: u64) -> !;
}
