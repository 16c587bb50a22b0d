//! Injecting synchronous exceptions into the guest's EL1, as if the
//! hardware had taken them there: the defined outcome of an access or
//! instruction the hypervisor does not emulate. The architectural rules
//! (PSTATE on entry, vector, syndrome) are in [`super::exception`]; this
//! file feeds them the trapped state and writes the result.

use super::esr::{self, ec};
use super::exception::{self, EntryFeatures, ESR_CM, ESR_FNV, ESR_IL};
use aarch64_cpu::registers::*;

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

/// The core's features that shape exception entry, from its ID registers.
fn entry_features() -> EntryFeatures {
    let mmfr1 = ID_AA64MMFR1_EL1.get();
    let pfr1 = ID_AA64PFR1_EL1.get();
    EntryFeatures {
        pan: mmfr1 >> 20 & 0xf != 0,
        ssbs: pfr1 >> 4 & 0xf != 0,
        mte: pfr1 >> 8 & 0xf != 0,
    }
}

/// Redirects the guest to its EL1 synchronous exception vector with the
/// syndrome of `fault`. Called while handling the trap `fault` stands for
/// (ESR_EL2 still describes it: its IL, FnV and CM bits carry over). The
/// trapped instruction is the preferred return address (ELR_EL1), as for a
/// real abort or undefined instruction. Returns the vector address the
/// guest resumes at.
pub fn inject(fault: Fault) -> u64 {
    let trap = ESR_EL2.get();
    let is_abort = matches!(
        esr::exception_class(trap),
        ec::DABT_LOW | ec::IABT_LOW
    );
    let far_valid = |far: u64| (!is_abort || trap & ESR_FNV == 0).then_some(far);
    let fault = match fault {
        Fault::DataAbort { far, write } => exception::Fault::DataAbort {
            far: far_valid(far),
            write,
            cache_maintenance: esr::exception_class(trap) == ec::DABT_LOW && trap & ESR_CM != 0,
        },
        Fault::InstructionAbort { far } => exception::Fault::InstructionAbort {
            far: far_valid(far),
        },
        Fault::Undefined => exception::Fault::Undefined {
            il32: trap & ESR_IL != 0,
        },
    };
    let from = SPSR_EL2.get();
    let entry = exception::take(fault, from, SCTLR_EL1.get(), entry_features());
    ESR_EL1.set(entry.esr);
    if !matches!(fault, exception::Fault::Undefined { .. }) {
        FAR_EL1.set(entry.far);
    }
    ELR_EL1.set(ELR_EL2.get());
    SPSR_EL1.set(from);
    let vector = VBAR_EL1.get().wrapping_add(entry.vector_offset);
    ELR_EL2.set(vector);
    SPSR_EL2.set(entry.pstate);
    vector
}
