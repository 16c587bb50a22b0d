//! Small CPU helpers: identity, barriers, counters and ID registers.

use core::arch::asm;

/// This vCPU's index: MPIDR_EL1.Aff0 (Tessera gives vCPU i Aff0 = i).
pub fn cpu_id() -> usize {
    (mpidr() & 0xff) as usize
}

/// Raw MPIDR_EL1.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Full-system data memory barrier: orders flag accesses between vCPUs.
pub fn dmb() {
    // SAFETY: a barrier has no effect besides ordering memory accesses.
    unsafe { asm!("dmb sy", options(nostack, preserves_flags)) };
}

/// Instruction synchronization barrier.
pub fn isb() {
    // SAFETY: a barrier has no effect besides synchronizing the pipeline.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Wakes vCPUs waiting in [`wfe`].
pub fn sev() {
    // SAFETY: SEV only sets the event register of the PEs.
    unsafe { asm!("dsb sy", "sev", options(nostack, preserves_flags)) };
}

/// Waits for an event (may return spuriously, so always re-check a condition).
pub fn wfe() {
    // SAFETY: WFE only suspends execution until an event.
    unsafe { asm!("wfe", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt or, under Tessera, for the virtual timer condition.
pub fn wfi() {
    // SAFETY: WFI only suspends execution; DAIF stays as it is.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// Virtual counter CNTVCT_EL0, read after an ISB so it is not speculated early.
pub fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Counter frequency CNTFRQ_EL0 in Hz.
pub fn cntfrq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// ID_AA64PFR0_EL1 (trapped and virtualized by Tessera).
pub fn id_aa64pfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64pfr0_el1", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Current DAIF mask bits (bits 9:6).
pub fn daif() -> u64 {
    let v: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { asm!("mrs {}, daif", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Masks D, A, I and F.
pub fn mask_all_exceptions() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe {
        asm!(
            "msr daifset, #0xf",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// CNTV_CTL_EL0.ENABLE.
pub const CNTV_CTL_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
pub const CNTV_CTL_IMASK: u64 = 1 << 1;
/// CNTV_CTL_EL0.ISTATUS (read only).
pub const CNTV_CTL_ISTATUS: u64 = 1 << 2;

/// Writes CNTV_CVAL_EL0, the virtual timer compare value.
pub fn set_cntv_cval(value: u64) {
    // SAFETY: programming the EL1 virtual timer only affects its interrupt.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes CNTV_CTL_EL0.
pub fn set_cntv_ctl(value: u64) {
    // SAFETY: programming the EL1 virtual timer only affects its interrupt.
    unsafe {
        asm!("msr cntv_ctl_el0, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads CNTV_CTL_EL0.
pub fn cntv_ctl() -> u64 {
    let v: u64;
    // SAFETY: reading the timer control register has no side effects.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// PMCR_EL0.E: enable the counters.
const PMCR_E: u64 = 1 << 0;
/// PMCR_EL0.C: reset the cycle counter.
const PMCR_C: u64 = 1 << 2;
/// PMCR_EL0.LC: 64-bit cycle counter overflow.
const PMCR_LC: u64 = 1 << 6;
/// PMCCFILTR_EL0.NSH: count at EL2 too (P = U = 0 count at EL1 and EL0).
const PMCCFILTR_NSH: u64 = 1 << 27;
/// PMCNTENSET_EL0.C: enable the cycle counter.
const PMCNTENSET_C: u64 = 1 << 31;

/// Starts this core's cycle counter from 0, counting at EL2 too, so a
/// guest can measure the hypervisor (a VM with `pmu = true`; elsewhere the
/// PMU registers are undefined instructions). Under QEMU's `-icount
/// shift=0` one cycle is one instruction of whichever core runs.
pub fn enable_cycle_counter() {
    // SAFETY: programming the guest's own PMU has no effect on memory.
    unsafe {
        asm!(
            "msr pmccfiltr_el0, {filt}",
            "msr pmcntenset_el0, {en}",
            "msr pmcr_el0, {pmcr}",
            "isb",
            filt = in(reg) PMCCFILTR_NSH,
            en = in(reg) PMCNTENSET_C,
            pmcr = in(reg) PMCR_E | PMCR_C | PMCR_LC,
            options(nomem, nostack, preserves_flags),
        )
    };
}
