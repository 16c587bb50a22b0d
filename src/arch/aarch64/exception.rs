//! Architectural entry of a synchronous exception taken to EL1, as the
//! hardware would perform it (Arm ARM `AArch64.TakeException`): the new
//! PSTATE, the vector offset and the syndrome. Pure: `inject.rs` feeds it
//! the trapped state and writes the result; host tests check the rules.

/// ESR.EC of the exceptions Tessera injects.
mod ec {
    pub const UNKNOWN: u64 = 0x00;
    pub const IABT_LOW: u64 = 0x20;
    pub const IABT_CUR: u64 = 0x21;
    pub const DABT_LOW: u64 = 0x24;
    pub const DABT_CUR: u64 = 0x25;
}

/// ESR.IL: the instruction was 32 bits.
pub const ESR_IL: u64 = 1 << 25;
/// Abort ISS.FnV: FAR is not valid.
pub const ESR_FNV: u64 = 1 << 10;
/// Data abort ISS.CM: cache maintenance or address translation instruction.
pub const ESR_CM: u64 = 1 << 8;
/// Data abort ISS.WnR: write.
pub const ESR_WNR: u64 = 1 << 6;
/// DFSC/IFSC: synchronous external abort, not on a translation table walk.
pub const FSC_SYNC_EXTERNAL: u64 = 0x10;

/// PSTATE/SPSR bits (AArch64 layout).
pub mod pstate {
    /// Tag check override (FEAT_MTE).
    pub const TCO: u64 = 1 << 25;
    /// User access override (FEAT_UAO).
    pub const UAO: u64 = 1 << 23;
    /// Privileged access never (FEAT_PAN).
    pub const PAN: u64 = 1 << 22;
    /// Software step.
    pub const SS: u64 = 1 << 21;
    /// Illegal execution state.
    pub const IL: u64 = 1 << 20;
    /// Speculative store bypass safe (FEAT_SSBS).
    pub const SSBS: u64 = 1 << 12;
    /// Branch type (FEAT_BTI).
    pub const BTYPE: u64 = 3 << 10;
    /// D, A, I, F masks.
    pub const DAIF: u64 = 0xf << 6;
    /// Execution state and mode.
    pub const M: u64 = 0x1f;
    /// EL1 with SP_EL1.
    pub const EL1H: u64 = 0b0101;
}

/// PSTATE.NZCV.
const NZCV: u64 = 0xf << 28;
/// PSTATE.DIT (AArch64 position).
const DIT: u64 = 1 << 24;

/// SCTLR_EL1.SPAN: PAN is *not* set on exception entry when 1.
pub const SCTLR_SPAN: u64 = 1 << 23;
/// SCTLR_EL1.DSSBS: PSTATE.SSBS on exception entry.
pub const SCTLR_DSSBS: u64 = 1 << 44;

/// What the guest is to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Synchronous external data abort.
    DataAbort {
        /// Faulting virtual address, if known (None: ESR.FnV set).
        far: Option<u64>,
        /// The access was a write.
        write: bool,
        /// The access was a cache maintenance instruction (ESR.CM).
        cache_maintenance: bool,
    },
    /// Synchronous external instruction abort.
    InstructionAbort {
        /// Faulting virtual address, if known.
        far: Option<u64>,
    },
    /// Undefined instruction (EC 0x00).
    Undefined {
        /// The instruction was 32 bits (ESR.IL), as the trap reported it.
        il32: bool,
    },
}

/// The core's features that change exception entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryFeatures {
    /// FEAT_PAN.
    pub pan: bool,
    /// FEAT_SSBS.
    pub ssbs: bool,
    /// FEAT_MTE (any level).
    pub mte: bool,
}

/// The result of taking the exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// PSTATE the guest runs its handler with (SPSR_EL2 for the eret).
    pub pstate: u64,
    /// Offset of the vector from VBAR_EL1.
    pub vector_offset: u64,
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1 (0 when the fault has no valid address: FAR is UNKNOWN).
    pub far: u64,
}

/// Takes `fault` to EL1 from the state `from` (the trapped PSTATE,
/// SPSR_EL2) with the guest's `sctlr_el1`, on a core with `features`.
pub fn take(fault: Fault, from: u64, sctlr_el1: u64, features: EntryFeatures) -> Entry {
    let aarch32 = from & 0x10 != 0;
    let from_el = if aarch32 { 0 } else { from >> 2 & 3 };
    let lower = from_el == 0;
    // Vector: current EL with SP_EL0, current EL with SP_EL1, lower EL
    // AArch64, lower EL AArch32; synchronous is the first of each group.
    let vector_offset = match (aarch32, from_el, from & 1) {
        (true, _, _) => 0x600,
        (false, 0, _) => 0x400,
        (false, _, 0) => 0x000,
        _ => 0x200,
    };

    // PSTATE on entry: EL1h, all of DAIF masked; SS, IL, BTYPE and UAO
    // cleared; NZCV, DIT and PAN carried over (an AArch32 source keeps DIT
    // at bit 21); then PAN set unless SCTLR_EL1.SPAN, SSBS from
    // SCTLR_EL1.DSSBS, TCO set.
    let mut p = from & (NZCV | pstate::PAN);
    p |= if aarch32 {
        (from >> 21 & 1) << 24
    } else {
        from & DIT
    };
    p |= pstate::DAIF | pstate::EL1H;
    if !features.pan {
        p &= !pstate::PAN;
    } else if sctlr_el1 & SCTLR_SPAN == 0 {
        p |= pstate::PAN;
    }
    if features.ssbs && sctlr_el1 & SCTLR_DSSBS != 0 {
        p |= pstate::SSBS;
    }
    if features.mte {
        p |= pstate::TCO;
    }

    let (esr, far) = match fault {
        Fault::DataAbort {
            far,
            write,
            cache_maintenance,
        } => {
            let class = if lower { ec::DABT_LOW } else { ec::DABT_CUR };
            let mut iss = FSC_SYNC_EXTERNAL;
            if write || cache_maintenance {
                // Cache maintenance reports WnR = 1 (Arm ARM, ISS encoding).
                iss |= ESR_WNR;
            }
            if cache_maintenance {
                iss |= ESR_CM;
            }
            if far.is_none() {
                iss |= ESR_FNV;
            }
            (class << 26 | ESR_IL | iss, far.unwrap_or(0))
        }
        Fault::InstructionAbort { far } => {
            let class = if lower { ec::IABT_LOW } else { ec::IABT_CUR };
            let fnv = if far.is_none() { ESR_FNV } else { 0 };
            (
                class << 26 | ESR_IL | FSC_SYNC_EXTERNAL | fnv,
                far.unwrap_or(0),
            )
        }
        Fault::Undefined { il32 } => (ec::UNKNOWN << 26 | if il32 { ESR_IL } else { 0 }, 0),
    };
    Entry {
        pstate: p,
        vector_offset,
        esr,
        far,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: EntryFeatures = EntryFeatures {
        pan: true,
        ssbs: true,
        mte: true,
    };
    const V80: EntryFeatures = EntryFeatures {
        pan: false,
        ssbs: false,
        mte: false,
    };
    const EL1H: u64 = 0b0101;
    const EL1T: u64 = 0b0100;
    const EL0: u64 = 0b0000;
    const A32_USR: u64 = 0b1_0000;
    const DATA: Fault = Fault::DataAbort {
        far: Some(0x1234),
        write: false,
        cache_maintenance: false,
    };

    #[test]
    fn vector_offset_by_source() {
        for (from, off) in [(EL1H, 0x200), (EL1T, 0x000), (EL0, 0x400), (A32_USR, 0x600)] {
            assert_eq!(
                take(DATA, from, 0, V80).vector_offset,
                off,
                "from {from:#b}"
            );
        }
    }

    #[test]
    fn class_follows_the_source_el() {
        assert_eq!(take(DATA, EL1H, 0, V80).esr >> 26, 0x25);
        assert_eq!(take(DATA, EL0, 0, V80).esr >> 26, 0x24);
        let iabt = Fault::InstructionAbort { far: Some(4) };
        assert_eq!(take(iabt, EL1T, 0, V80).esr >> 26, 0x21);
        assert_eq!(take(iabt, A32_USR, 0, V80).esr >> 26, 0x20);
    }

    #[test]
    fn pstate_on_entry() {
        // Interrupted EL0 code with NZCV, BTYPE, SS, IL, UAO set, DAIF clear.
        let from = 0xf << 28 | pstate::UAO | pstate::SS | pstate::IL | pstate::BTYPE | EL0;
        let e = take(DATA, from, 0, ALL);
        assert_eq!(e.pstate & pstate::M, EL1H);
        assert_eq!(e.pstate & pstate::DAIF, pstate::DAIF);
        assert_eq!(e.pstate >> 28, 0xf, "NZCV kept");
        assert_eq!(
            e.pstate & (pstate::SS | pstate::IL | pstate::BTYPE | pstate::UAO),
            0
        );
        assert_ne!(e.pstate & pstate::PAN, 0, "SPAN = 0 sets PAN");
        assert_eq!(e.pstate & pstate::SSBS, 0, "DSSBS = 0");
        assert_ne!(e.pstate & pstate::TCO, 0, "TCO set with MTE");
        let v80 = take(DATA, from, 0, V80);
        assert_eq!(v80.pstate & (pstate::PAN | pstate::TCO | pstate::SSBS), 0);
    }

    #[test]
    fn span_keeps_pan_and_dssbs_sets_ssbs() {
        let sctlr = SCTLR_SPAN | SCTLR_DSSBS;
        assert_eq!(take(DATA, EL1H, sctlr, ALL).pstate & pstate::PAN, 0);
        let with_pan = take(DATA, EL1H | pstate::PAN, sctlr, ALL);
        assert_ne!(with_pan.pstate & pstate::PAN, 0, "PAN kept when SPAN = 1");
        assert_ne!(with_pan.pstate & pstate::SSBS, 0);
    }

    #[test]
    fn data_abort_syndrome() {
        let e = take(DATA, EL1H, 0, V80);
        assert_eq!(e.esr, 0x25 << 26 | ESR_IL | FSC_SYNC_EXTERNAL);
        assert_eq!(e.far, 0x1234);
        let w = Fault::DataAbort {
            far: Some(8),
            write: true,
            cache_maintenance: false,
        };
        assert_ne!(take(w, EL1H, 0, V80).esr & ESR_WNR, 0);
        let cm = Fault::DataAbort {
            far: Some(8),
            write: false,
            cache_maintenance: true,
        };
        let e = take(cm, EL1H, 0, V80);
        assert_eq!(e.esr & (ESR_CM | ESR_WNR), ESR_CM | ESR_WNR);
        let nofar = Fault::DataAbort {
            far: None,
            write: false,
            cache_maintenance: false,
        };
        let e = take(nofar, EL1H, 0, V80);
        assert_ne!(e.esr & ESR_FNV, 0, "FnV when FAR is not valid");
        assert_eq!(e.far, 0);
    }

    #[test]
    fn undefined_instruction_syndrome() {
        let e = take(Fault::Undefined { il32: true }, EL1H, 0, V80);
        assert_eq!(e.esr, ESR_IL, "EC 0, IL for a 32-bit instruction");
        let t16 = take(Fault::Undefined { il32: false }, A32_USR, 0, V80);
        assert_eq!(t16.esr, 0, "16-bit T32 instruction: IL clear");
        assert_eq!(t16.vector_offset, 0x600);
    }
}
