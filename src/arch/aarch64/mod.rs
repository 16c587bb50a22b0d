//! AArch64 back-end: EL2 boot, stage-2 translation, exception vectors,
//! syndrome decoding, PSCI, GICv3.
//!
//! Pure decoders (`esr`, `insn`, `stage2`, `sysreg`) build on the host too and
//! are unit-tested there; everything that touches registers is bare-metal only.

pub mod esr;
pub mod insn;
pub mod smccc;
pub mod stage2;
pub mod sysreg;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod gicv3;
#[cfg(target_os = "none")]
pub mod id_regs;
#[cfg(target_os = "none")]
pub mod inject;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod psci;
#[cfg(target_os = "none")]
pub mod semihosting;
#[cfg(target_os = "none")]
pub mod trap;
#[cfg(target_os = "none")]
mod vectors;

#[cfg(target_os = "none")]
mod start;

#[cfg(target_os = "none")]
pub mod interface;
