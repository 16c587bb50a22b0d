//! AArch64 back-end: EL2 boot, stage-2 translation, exception vectors,
//! syndrome decoding, PSCI, GICv3.
//!
//! Pure logic (`esr`, `insn`, `stage2`, `sysreg`, `id_fields`, `trap_config`,
//! `exception`, `el2_map`, `serror`) builds on the host too and is unit-tested there;
//! everything that touches registers is bare-metal only.

pub mod el2_map;
pub mod esr;
pub mod exception;
pub mod id_fields;
pub mod insn;
pub mod list_regs;
pub mod list_regs_v2;
pub mod serror;
pub mod smccc;
pub mod stage2;
pub mod sysreg;
pub mod trap_config;

/// Items that touch the hardware: built for the bare-metal target only.
macro_rules! bare_metal {
    ($($item:item)*) => { $(#[cfg(target_os = "none")] $item)* };
}

bare_metal! {
    mod boot;
    pub mod cache;
    pub mod contract;
    pub mod cpu;
    pub mod gic;
    pub mod gicd_spi;
    pub mod gicv2;
    pub mod gicv3;
    mod guest_psci;
    pub mod hyp_fault;
    pub mod guest_sysregs;
    pub mod id_regs;
    pub mod inject;
    mod irq;
    mod mmio_decode;
    pub mod interface;
    pub mod mmu;
    pub mod psci;
    pub mod semihosting;
    mod start;
    pub mod stage2_live;
    pub mod trap;
    mod vectors;
    pub mod vgic_hw;
}
