//! Injecting synchronous exceptions into the guest's EL1, as if the
//! hardware had taken them there: the defined outcome of an access or
//! instruction the hypervisor does not emulate.

use super::cpu::SPSR_EL1H_MASKED;
use super::esr::ec;
use aarch64_cpu::registers::*;

/// ESR.IL: 32-bit instruction.
const IL: u64 = 1 << 25;
/// DFSC/IFSC: synchronous external abort, not on a translation table walk.
const FSC_EXTERNAL_ABORT: u64 = 0x10;
/// Data abort ISS WnR bit.
const WNR: u64 = 1 << 6;

/// What to inject.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Synchronous external data abort at virtual address `far`.
    DataAbort {
        /// Faulting virtual address (FAR_EL2 of the trap).
        far: u64,
        /// The access was a write.
        write: bool,
    },
    /// Synchronous external instruction abort at `far`.
    InstructionAbort {
        /// Faulting virtual address.
        far: u64,
    },
    /// Undefined instruction.
    Undefined,
}

/// Redirects the guest to its EL1 synchronous exception vector with the
/// syndrome of `fault`. The faulting instruction is the preferred return
/// address (ELR_EL1), as for a real abort.
pub fn inject(fault: Fault) {
    let spsr = SPSR_EL2.get();
    let mode = spsr & 0x1f;
    // Vector offset by the mode the exception came from.
    let (offset, from_lower) = match mode {
        0b00101 => (0x200, false), // EL1h
        0b00100 => (0x000, false), // EL1t
        0b00000 => (0x400, true),  // EL0 AArch64
        _ => (0x600, true),        // AArch32 EL0
    };
    let (esr, far) = match fault {
        Fault::DataAbort { far, write } => {
            let class = if from_lower {
                ec::DABT_LOW
            } else {
                ec::DABT_CUR
            };
            (
                (class as u64) << 26 | IL | FSC_EXTERNAL_ABORT | if write { WNR } else { 0 },
                Some(far),
            )
        }
        Fault::InstructionAbort { far } => {
            let class = if from_lower {
                ec::IABT_LOW
            } else {
                ec::IABT_CUR
            };
            ((class as u64) << 26 | IL | FSC_EXTERNAL_ABORT, Some(far))
        }
        Fault::Undefined => ((ec::UNKNOWN as u64) << 26 | IL, None),
    };
    ESR_EL1.set(esr);
    if let Some(far) = far {
        FAR_EL1.set(far);
    }
    ELR_EL1.set(ELR_EL2.get());
    SPSR_EL1.set(spsr);
    ELR_EL2.set(VBAR_EL1.get() + offset);
    SPSR_EL2.set(SPSR_EL1H_MASKED);
}
