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
pub use platform_glue::*;

/// What the arch-neutral core calls on this back-end.
#[cfg(target_os = "none")]
mod platform_glue {
    use super::{cpu, gicv3, psci, semihosting};
    use crate::config::SYSTEM;

    /// Index (in the board description) of the calling physical CPU.
    pub fn this_cpu() -> usize {
        let mpidr = cpu::mpidr();
        SYSTEM
            .board
            .cpu_mpidrs
            .iter()
            .position(|&m| m == mpidr)
            .unwrap_or(usize::MAX)
    }

    /// Makes physical CPU `cpu` look at its vCPU's state (wakes it from WFI,
    /// or takes it out of its guest).
    pub fn kick_cpu(cpu: usize) {
        if let Some(&mpidr) = SYSTEM.board.cpu_mpidrs.get(cpu) {
            gicv3::kick(mpidr);
        }
    }

    /// Acknowledges every pending interrupt of this core (the kicks that
    /// woke it; nothing else is enabled yet).
    pub fn drain_kicks() {
        while let Some(intid) = gicv3::acknowledge() {
            gicv3::end_of_interrupt(intid);
        }
    }

    /// Ends the run: PSCI SYSTEM_OFF if `success`, else (on emulator boards)
    /// a semihosting exit with status 1, so the emulator's exit status says
    /// how the run ended.
    pub fn system_off(success: bool) -> ! {
        if !success && SYSTEM.board.semihosting_exit {
            semihosting::exit(1);
        }
        psci::system_off();
        cpu::halt()
    }
}
