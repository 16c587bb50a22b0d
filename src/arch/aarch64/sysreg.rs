//! System-register encodings as packed `op0:op1:CRn:CRm:op2`, the key of the
//! system-register bus, and the encodings Tessera traps and emulates.

/// Packs a system-register encoding.
pub const fn encode(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
    (op0 & 3) << 14 | (op1 & 7) << 11 | (crn & 0xf) << 7 | (crm & 0xf) << 3 | (op2 & 7)
}

/// Unpacks an encoding into (op0, op1, CRn, CRm, op2).
pub const fn decode(sysreg: u32) -> (u32, u32, u32, u32, u32) {
    (
        sysreg >> 14 & 3,
        sysreg >> 11 & 7,
        sysreg >> 7 & 0xf,
        sysreg >> 3 & 0xf,
        sysreg & 7,
    )
}

/// ICC_SGI1R_EL1: generate group 1 SGIs (trapped under HCR_EL2.IMO).
pub const ICC_SGI1R_EL1: u32 = encode(3, 0, 12, 11, 5);
/// ICC_SGI0R_EL1: generate group 0 SGIs (the last of the three).
pub const ICC_SGI0R_EL1: u32 = encode(3, 0, 12, 11, 7);

/// ID_AA64PFR0_EL1.
pub const ID_AA64PFR0_EL1: u32 = encode(3, 0, 0, 4, 0);
/// ID_AA64PFR1_EL1.
pub const ID_AA64PFR1_EL1: u32 = encode(3, 0, 0, 4, 1);
/// ID_AA64DFR0_EL1.
pub const ID_AA64DFR0_EL1: u32 = encode(3, 0, 0, 5, 0);
/// ID_AA64ISAR0_EL1.
pub const ID_AA64ISAR0_EL1: u32 = encode(3, 0, 0, 6, 0);
/// ID_AA64ISAR1_EL1.
pub const ID_AA64ISAR1_EL1: u32 = encode(3, 0, 0, 6, 1);
/// ID_AA64ISAR2_EL1.
pub const ID_AA64ISAR2_EL1: u32 = encode(3, 0, 0, 6, 2);
/// ID_AA64MMFR0_EL1.
pub const ID_AA64MMFR0_EL1: u32 = encode(3, 0, 0, 7, 0);
/// ID_AA64MMFR1_EL1.
pub const ID_AA64MMFR1_EL1: u32 = encode(3, 0, 0, 7, 1);
/// ID_AA64MMFR2_EL1.
pub const ID_AA64MMFR2_EL1: u32 = encode(3, 0, 0, 7, 2);
/// ID_AA64MMFR3_EL1.
pub const ID_AA64MMFR3_EL1: u32 = encode(3, 0, 0, 7, 3);

/// DC ISW: invalidate data cache line by set/way (trapped by HCR_EL2.TSW).
pub const DC_ISW: u32 = encode(1, 0, 7, 6, 2);
/// DC CSW: clean data cache line by set/way.
pub const DC_CSW: u32 = encode(1, 0, 7, 10, 2);
/// DC CISW: clean and invalidate data cache line by set/way.
pub const DC_CISW: u32 = encode(1, 0, 7, 14, 2);
/// ACTLR_EL1 (trapped by HCR_EL2.TACR).
pub const ACTLR_EL1: u32 = encode(3, 0, 1, 0, 1);
/// First encoding of the debug space (op0 = 2: MDSCR_EL1, breakpoints,
/// watchpoints, OS lock, DCC, claim tags, trace), trapped by MDCR_EL2.TDA,
/// TDOSA, TDRA and CPTR_EL2.TTA.
pub const DEBUG_FIRST: u32 = encode(2, 0, 0, 0, 0);
/// Last encoding of the debug space.
pub const DEBUG_LAST: u32 = encode(2, 7, 15, 15, 7);

/// First encoding of the feature-ID group trapped by HCR_EL2.TID3
/// (op0=3, op1=0, CRn=0, CRm=1..=7): contiguous in the packed encoding.
pub const ID_GROUP3_FIRST: u32 = encode(3, 0, 0, 1, 0);
/// Last encoding of the feature-ID group 3.
pub const ID_GROUP3_LAST: u32 = encode(3, 0, 0, 7, 7);

#[cfg(test)]
mod tests {
    use super::*;

    fn is_id_group3(sysreg: u32) -> bool {
        (ID_GROUP3_FIRST..=ID_GROUP3_LAST).contains(&sysreg)
    }

    #[test]
    fn encode_round_trips() {
        let e = encode(3, 4, 12, 11, 5);
        assert_eq!(decode(e), (3, 4, 12, 11, 5));
    }

    #[test]
    fn id_group3_covers_crm_1_to_7_only() {
        for crm in 0..16 {
            for op2 in 0..8 {
                let inside = (1..=7).contains(&crm);
                assert_eq!(
                    is_id_group3(encode(3, 0, 0, crm, op2)),
                    inside,
                    "CRm {crm} op2 {op2}"
                );
            }
        }
        assert!(is_id_group3(ID_AA64PFR0_EL1));
        assert!(is_id_group3(encode(3, 0, 0, 7, 7)));
        assert!(!is_id_group3(encode(3, 0, 0, 0, 5))); // MPIDR_EL1
        assert!(!is_id_group3(encode(3, 0, 1, 0, 0))); // SCTLR_EL1
    }

    #[test]
    fn debug_space_covers_op0_2_only() {
        let debug = |r: u32| (DEBUG_FIRST..=DEBUG_LAST).contains(&r);
        assert!(debug(encode(2, 0, 0, 2, 2))); // MDSCR_EL1
        assert!(debug(encode(2, 0, 1, 0, 4))); // OSLAR_EL1
        assert!(debug(encode(2, 3, 0, 4, 0))); // DBGDTR_EL0
        assert!(debug(encode(2, 1, 0, 1, 0))); // a trace register
        assert!(!debug(encode(3, 3, 9, 13, 0))); // PMCCNTR_EL0
        assert!(!debug(DC_CISW) && !debug(ACTLR_EL1));
        assert_eq!(decode(DC_CISW), (1, 0, 7, 14, 2));
    }
}
