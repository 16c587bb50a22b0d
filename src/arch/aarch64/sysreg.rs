//! System-register encodings as packed `op0:op1:CRn:CRm:op2`, the key of the
//! system-register bus, plus the ID registers Tessera virtualizes.

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

/// ID_AA64PFR0_EL1: processor feature register 0.
pub const ID_AA64PFR0_EL1: u32 = encode(3, 0, 0, 4, 0);

/// First encoding of the feature-ID group trapped by HCR_EL2.TID3
/// (op0=3, op1=0, CRn=0, CRm=1..=7): contiguous in the packed encoding.
pub const ID_GROUP3_FIRST: u32 = encode(3, 0, 0, 1, 0);
/// Last encoding of the feature-ID group 3.
pub const ID_GROUP3_LAST: u32 = encode(3, 0, 0, 7, 7);

/// ID_AA64PFR0_EL1 fields a VM does not get, cleared from the value it reads:
/// SVE [35:32] (its state is not context-managed),
/// AMU [47:44] and MPAM [43:40] (not virtualized), RAS [31:28] (error records
/// are the hypervisor's).
pub const ID_AA64PFR0_HIDDEN: u64 = 0xf << 32 | 0xf << 44 | 0xf << 40 | 0xf << 28;

/// The value a VM reads for a feature-ID register, given the hardware value.
pub const fn virtual_id_value(sysreg: u32, hw: u64) -> u64 {
    if sysreg == ID_AA64PFR0_EL1 {
        hw & !ID_AA64PFR0_HIDDEN
    } else {
        hw
    }
}

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
    fn pfr0_hides_sve_and_gic() {
        let hw = 0x1111_1111_1111_1111;
        let v = virtual_id_value(ID_AA64PFR0_EL1, hw);
        assert_eq!(v >> 32 & 0xf, 0);
        assert_eq!(v >> 24 & 0xf, 0);
        assert_eq!(v & 0xf, 1); // EL0 field kept
        assert_eq!(virtual_id_value(encode(3, 0, 0, 7, 0), hw), hw);
    }
}
