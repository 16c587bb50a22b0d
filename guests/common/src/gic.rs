//! The guest's view of its GIC (QEMU `virt` addresses, as Tessera presents
//! them): a GICv3 (distributor and redistributor MMIO, ICC system
//! registers), or on a GICv2 board a GICv2 (distributor and CPU interface
//! MMIO), told apart at run time by the distributor's ICPIDR2 at 0xfe8
//! (GICv2: ArchRev 2; a GICv3 distributor has nothing there and reads 0).

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// Distributor base.
pub const GICD_BASE: u64 = 0x0800_0000;
/// First redistributor; vCPU `i`'s is at `GICR_BASE + i * GICR_STRIDE`.
pub const GICR_BASE: u64 = 0x080A_0000;
/// Size of one redistributor (RD + SGI frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Offset of the SGI frame inside a redistributor.
pub const GICR_SGI: u64 = 0x1_0000;

/// Distributor register offsets.
pub mod gicd {
    /// Control.
    pub const CTLR: u64 = 0x0000;
    /// Type.
    pub const TYPER: u64 = 0x0004;
    /// Set-enable (word n: INTIDs 32n..).
    pub const ISENABLER: u64 = 0x0100;
    /// Set-pending.
    pub const ISPENDR: u64 = 0x0200;
    /// Priorities, one byte per INTID.
    pub const IPRIORITYR: u64 = 0x0400;
    /// Routing, 8 bytes per INTID.
    pub const IROUTER: u64 = 0x6000;
    /// Peripheral ID 2 (architecture revision).
    pub const PIDR2: u64 = 0xffe8;
}

/// Redistributor register offsets (RD frame, then SGI frame).
pub mod gicr {
    /// Type (64-bit).
    pub const TYPER: u64 = 0x0008;
    /// Wake control.
    pub const WAKER: u64 = 0x0014;
    /// SGI/PPI group (SGI frame).
    pub const IGROUPR0: u64 = 0x0080;
    /// SGI/PPI set-enable (SGI frame).
    pub const ISENABLER0: u64 = 0x0100;
    /// SGI/PPI priorities (SGI frame).
    pub const IPRIORITYR: u64 = 0x0400;
}

/// GICD_CTLR.EnableGrp1 (single security state).
pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// GICv2 CPU interface (the VM's GICC, backed by the GICV frame).
pub const GICC_BASE: u64 = 0x0801_0000;

/// GICv2 register offsets: distributor SGIR, CPU interface.
pub mod v2 {
    /// GICD_SGIR: software-generated interrupts.
    pub const GICD_SGIR: u64 = 0x0f00;
    /// GICD_ITARGETSR: CPU targets, one byte per INTID.
    pub const GICD_ITARGETSR: u64 = 0x0800;
    /// GICD_ICPIDR2 (architecture revision).
    pub const GICD_PIDR2: u64 = 0x0fe8;
    /// GICC_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICC_PMR.
    pub const PMR: u64 = 0x0004;
    /// GICC_IAR.
    pub const IAR: u64 = 0x000c;
    /// GICC_EOIR.
    pub const EOIR: u64 = 0x0010;
}

/// 0 unknown, 2 or 3: the GIC generation, read once.
static VERSION: AtomicU8 = AtomicU8::new(0);

/// Whether the VM's GIC is a GICv2 (no GIC system registers).
pub fn is_gicv2() -> bool {
    let mut v = VERSION.load(Ordering::Relaxed);
    if v == 0 {
        // SAFETY: an aligned register (GICv2) or reserved offset (GICv3) of
        // the VM's own distributor.
        let pidr2 = unsafe { read32(GICD_BASE + v2::GICD_PIDR2) };
        v = if pidr2 >> 4 & 0xf == 2 { 2 } else { 3 };
        VERSION.store(v, Ordering::Relaxed);
    }
    v == 2
}

/// Reads a 32-bit GIC register.
///
/// # Safety
/// `addr` must be an aligned GIC register address of this VM's GIC (or a
/// probe inside `exception::guarded`).
pub unsafe fn read32(addr: u64) -> u32 {
    // SAFETY: upheld by the caller.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Writes a 32-bit GIC register.
///
/// # Safety
/// As [`read32`].
pub unsafe fn write32(addr: u64, value: u32) {
    // SAFETY: upheld by the caller.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// This vCPU's redistributor SGI frame.
pub fn my_sgi_frame() -> u64 {
    GICR_BASE + crate::cpu::cpu_id() as u64 * GICR_STRIDE + GICR_SGI
}

/// Enables the distributor (group 1), wakes this vCPU's redistributor and
/// opens its CPU interface (priority mask 0xff, group 1 on).
pub fn init_this_cpu() {
    if is_gicv2() {
        // SAFETY: the VM's own distributor and CPU interface.
        unsafe {
            write32(GICD_BASE + gicd::CTLR, 1);
            write32(GICC_BASE + v2::PMR, 0xff);
            write32(GICC_BASE + v2::CTLR, 1);
        }
        return;
    }
    let rd = GICR_BASE + crate::cpu::cpu_id() as u64 * GICR_STRIDE;
    // SAFETY: the VM's own GIC registers.
    unsafe {
        write32(GICD_BASE + gicd::CTLR, CTLR_ENABLE_GRP1);
        // Group 1 for every SGI/PPI (Tessera: RAO/WI; a real GIC resets to 0).
        write32(rd + GICR_SGI + gicr::IGROUPR0, u32::MAX);
        write32(rd + gicr::WAKER, 0);
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nostack)
        );
    }
}

/// Enables private interrupt `intid` (< 32) at this vCPU's redistributor
/// with priority `prio`.
pub fn enable_private(intid: u32, prio: u8) {
    let sgi = if is_gicv2() {
        // GICv2: the distributor's banked first words.
        GICD_BASE
    } else {
        my_sgi_frame()
    };
    // SAFETY: the VM's own redistributor; byte-wide priority writes are
    // architecturally allowed.
    unsafe {
        core::ptr::write_volatile((sgi + gicr::IPRIORITYR + intid as u64) as *mut u8, prio);
        write32(sgi + gicr::ISENABLER0, 1 << intid);
    }
}

/// Acknowledges the highest-priority pending interrupt (1023: none).
pub fn ack() -> u32 {
    if is_gicv2() {
        // SAFETY: reading IAR acknowledges an interrupt of this vCPU. The
        // SGI source CPU (bits 12:10) is 0 under Tessera.
        return unsafe { read32(GICC_BASE + v2::IAR) } & 0x3ff;
    }
    let v: u64;
    // SAFETY: reading IAR acknowledges an interrupt of this vCPU.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nostack)) };
    v as u32 & 0xff_ffff
}

/// Ends an acknowledged interrupt (EOImode 0: drops and deactivates).
pub fn eoi(intid: u32) {
    if is_gicv2() {
        // SAFETY: EOI of an interrupt this vCPU acknowledged.
        unsafe { write32(GICC_BASE + v2::EOIR, intid) };
        return;
    }
    // SAFETY: EOI of an interrupt this vCPU acknowledged.
    unsafe { asm!("msr icc_eoir1_el1, {}", in(reg) intid as u64, options(nostack)) };
}

/// Sends SGI `intid` through ICC_SGI1R_EL1 with the raw target fields.
/// On a GICv2, GICD_SGIR: `irm` is "all but self", a non-zero `aff1`
/// names no CPU interface (nothing is sent), `target_list` bits 0-7 are
/// CPU interfaces 0-7.
pub fn send_sgi(intid: u32, target_list: u16, aff1: u8, irm: bool) {
    if is_gicv2() {
        if aff1 != 0 {
            return;
        }
        let filter = if irm { 1 << 24 } else { 0 };
        let v = filter | (target_list as u32 & 0xff) << 16 | (intid & 0xf);
        // SAFETY: the VM's own distributor.
        unsafe { write32(GICD_BASE + v2::GICD_SGIR, v) };
        return;
    }
    let v =
        (intid as u64 & 0xf) << 24 | target_list as u64 | (aff1 as u64) << 16 | (irm as u64) << 40;
    // SAFETY: SGI generation has no memory effect.
    unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack)) };
}

/// Unmasks IRQs at EL1.
pub fn unmask_irq() {
    // SAFETY: only changes PSTATE.I.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Masks IRQs at EL1.
pub fn mask_irq() {
    // SAFETY: only changes PSTATE.I.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack)) };
}
