//! Per-core EL2 state: what each core programs once for the VM it runs,
//! how a vCPU is (re)started, and this core's identity.

use super::id_fields::VmFeatures;
use super::trap_config::{self, HwIds, Traps};
use super::vectors;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// SCTLR_EL1 RES1 bits with MMU and caches off: a vCPU's reset state.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// PSTATE for EL1h with D, A, I, F masked: a vCPU's reset state and the
/// state an exception taken to EL1 starts in.
pub const SPSR_EL1H_MASKED: u64 = SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value
    | SPSR_EL2::M::EL1h.value;
/// MPIDR bit 31 is RES1.
const MPIDR_RES1: u64 = 1 << 31;
/// CNTHCTL_EL2.EVNTEN and EVNTI = 9: an event every 2^10 counter ticks
/// (16 µs at 62.5 MHz) so idle loops waiting with WFE poll their condition.
const CNTHCTL_EVENT_STREAM: u64 = 1 << 2 | 9 << 4;

/// Current exception level (the hypervisor must run at 2).
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// This core's MPIDR affinity fields.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Installs the EL2 vectors and the VM-independent traps (CPTR_EL2: FP is
/// the guest's, SVE/SME/trace/AMU trap). Every core, at boot.
pub fn init_el2() {
    VBAR_EL2.set(vectors::tessera_el2_vectors as *const () as u64);
    CPTR_EL2.set(trap_config::traps(&hw_ids(), VmFeatures::default()).cptr);
    // SAFETY: TLB maintenance has no memory-safety effect; drops whatever
    // stage-1/2 entries firmware may have left for EL1.
    unsafe { core::arch::asm!("tlbi alle1", "dsb nsh", "isb") };
}

/// Points TPIDR_EL2 at this core's per-core data. The `'static` borrow is
/// the proof trap handlers rely on when they dereference [`local`].
pub fn set_local(local: &'static crate::vcpu::CpuLocal) {
    TPIDR_EL2.set(local as *const crate::vcpu::CpuLocal as u64);
}

/// Marks this core as having no per-core data yet (TPIDR_EL2 resets to an
/// unknown value; code that may run on any core checks for null).
pub fn clear_local() {
    TPIDR_EL2.set(0);
}

/// This core's per-core data pointer.
#[inline(always)]
pub fn local() -> *const () {
    TPIDR_EL2.get() as *const ()
}

macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID register or PMCR_EL0 at EL2 has no side effect.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let v: u64 = $value;
        // SAFETY: an EL2 trap-control register: it changes which guest
        // operations trap, never the hypervisor's own memory.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

/// This core's feature-ID registers the trap policy depends on.
pub fn hw_ids() -> HwIds {
    HwIds {
        pfr0: ID_AA64PFR0_EL1.get(),
        pfr1: ID_AA64PFR1_EL1.get(),
        dfr0: ID_AA64DFR0_EL1.get(),
        isar1: ID_AA64ISAR1_EL1.get(),
        isar2: read_sysreg!("S3_0_C0_C6_2"),
        mmfr0: ID_AA64MMFR0_EL1.get(),
        mmfr1: ID_AA64MMFR1_EL1.get(),
        pmu_counters: (read_sysreg!("pmcr_el0") >> 11 & 0x1f) as u8,
    }
}

/// Writes the trap registers of [`trap_config::traps`].
fn write_traps(t: &Traps) {
    HCR_EL2.set(t.hcr);
    CPTR_EL2.set(t.cptr);
    write_sysreg!("mdcr_el2", t.mdcr);
    // No EL1 access to implementation-defined control registers.
    write_sysreg!("actlr_el2", 0);
    if let Some(hcrx) = t.hcrx {
        write_sysreg!("S3_4_C1_C2_2", hcrx); // HCRX_EL2
    }
    if let Some(mpam2) = t.mpam2 {
        write_sysreg!("S3_4_C10_C5_0", mpam2); // MPAM2_EL2
    }
    if t.fgt >= 1 {
        // HFGRTR, HFGWTR, HFGITR, HDFGRTR, HDFGWTR_EL2.
        write_sysreg!("S3_4_C1_C1_4", 0);
        write_sysreg!("S3_4_C1_C1_5", 0);
        write_sysreg!("S3_4_C1_C1_6", 0);
        write_sysreg!("S3_4_C3_C1_4", 0);
        write_sysreg!("S3_4_C3_C1_5", 0);
    }
    if t.fgt >= 2 {
        // HDFGRTR2, HDFGWTR2, HFGRTR2, HFGWTR2, HFGITR2_EL2.
        write_sysreg!("S3_4_C3_C1_0", 0);
        write_sysreg!("S3_4_C3_C1_1", 0);
        write_sysreg!("S3_4_C3_C1_2", 0);
        write_sysreg!("S3_4_C3_C1_3", 0);
        write_sysreg!("S3_4_C3_C1_7", 0);
    }
}

/// Programs this core's EL2 registers for running vCPU `vcpu_id` of the VM
/// whose stage-2 root is `stage2_root` and VMID `vmid`; `pmu`: the VM owns
/// this core's PMU.
pub fn configure_for_vm(stage2_root: u64, vmid: u16, vcpu_id: usize, pmu: bool) {
    VTCR_EL2.set(
        (VTCR_EL2::T0SZ.val(64 - super::stage2::IPA_BITS as u64)
            + VTCR_EL2::SL0::Granule4KBLevel1
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::TG0::Granule4KB
            + VTCR_EL2::PS::PA_40B_1TB
            + VTCR_EL2::VS::Bits8)
            .value
            | 1 << 31,
    );
    VTTBR_EL2.set((vmid as u64) << 48 | stage2_root);
    write_traps(&trap_config::traps(&hw_ids(), VmFeatures { pmu }));
    let vmpidr = MPIDR_RES1 | vcpu_id as u64;
    // SAFETY: the virtual MIDR/MPIDR only change what EL1 reads.
    unsafe {
        core::arch::asm!("msr vpidr_el2, {}", "msr vmpidr_el2, {}", in(reg) MIDR_EL1.get(), in(reg) vmpidr)
    };
    CNTHCTL_EL2
        .set((CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::SET).value | CNTHCTL_EVENT_STREAM);
    barrier::isb(barrier::SY);
    // SAFETY: TLB maintenance for this VMID (now current in VTTBR_EL2).
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb") };
}

/// Sets the guest's virtual counter offset (CNTVOFF_EL2).
pub fn set_counter_offset(offset: u64) {
    CNTVOFF_EL2.set(offset);
}

/// Starts the vCPU on this core at `entry` (guest-physical, EL1h, MMU off)
/// with x0 = `arg`, resetting the EL2 stack to `stack_top`.
pub fn enter_vcpu(stack_top: u64, entry: u64, arg: u64) -> ! {
    SCTLR_EL1.set(SCTLR_EL1_RESET);
    CNTV_CTL_EL0.set(0);
    CNTP_CTL_EL0.set(0);
    CPACR_EL1.set(0);
    VBAR_EL1.set(0);
    reset_el1_state();
    ELR_EL2.set(entry);
    SPSR_EL2.set(SPSR_EL1H_MASKED);
    barrier::isb(barrier::SY);
    // SAFETY: ELR/SPSR describe the guest entry; the stack above
    // `stack_top` holds nothing that is still needed.
    unsafe { vectors::tessera_enter_guest(stack_top, arg) }
}

/// Puts the rest of the vCPU's EL1 state and its FP/SIMD registers back
/// to known values, so nothing of a run before a VM reset (translation
/// tables, thread pointers, stack pointers, syndromes, vector registers)
/// survives into the next one. EL1 registers with an architectural reset
/// value of UNKNOWN are zeroed.
fn reset_el1_state() {
    TTBR0_EL1.set(0);
    TTBR1_EL1.set(0);
    TCR_EL1.set(0);
    MAIR_EL1.set(0);
    TPIDR_EL0.set(0);
    TPIDR_EL1.set(0);
    TPIDRRO_EL0.set(0);
    SP_EL0.set(0);
    SP_EL1.set(0);
    ELR_EL1.set(0);
    SPSR_EL1.set(0);
    ESR_EL1.set(0);
    FAR_EL1.set(0);
    PAR_EL1.set(0);
    CNTKCTL_EL1.set(0);
    CNTV_CVAL_EL0.set(0);
    CNTP_CVAL_EL0.set(0);
    // SAFETY: FP/SIMD is not trapped at EL2 (CPTR_EL2.TFP clear) and the
    // hypervisor, built soft-float, keeps nothing in these registers.
    // MOVI Vn.2D, #0 for every n, CONTEXTIDR_EL1 and MDSCR_EL1 (which
    // aarch64-cpu does not name), then FPCR and FPSR (by encoding: the
    // soft-float target's assembler does not name them).
    unsafe {
        core::arch::asm!(
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
            ".inst 0x6f00e400 + \\n",
            ".endr",
            "msr contextidr_el1, xzr",
            "msr mdscr_el1, xzr",
            "msr s3_3_c4_c4_0, xzr",
            "msr s3_3_c4_c4_1, xzr",
            options(nostack)
        )
    };
}

/// Waits for an interrupt (idle cores, parked vCPUs).
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
}

/// Stops the guest's EL1 timers (its vCPU is off: a timer it left armed
/// must not keep the forwarded interrupt asserted at this core).
pub fn stop_guest_timers() {
    CNTV_CTL_EL0.set(0);
    CNTP_CTL_EL0.set(0);
}

/// Halts this core for good (after a panic, or on a core with nothing to do).
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
