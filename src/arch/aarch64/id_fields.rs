//! What a VM reads from the feature-ID registers (the HCR_EL2.TID3 group):
//! a whitelist per register and per 4-bit field, KVM style. A field is
//! either passed through, capped at the highest level that works under
//! Tessera's EL2 settings, or fixed; every field not listed — including
//! fields a future architecture version defines — reads as 0, "not
//! implemented". A register not listed reads as 0 entirely.
//!
//! The rule behind each entry: a feature shown must work at EL1 with the
//! traps [`super::trap_config`] computes, and a feature whose controls need EL2
//! enabling we do not do, or whose state we do not own per VM, is hidden
//! (and trapped where a trap exists). Pure: host-tested.

use super::sysreg::*;

/// What the VM's configuration adds to the hardware's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmFeatures {
    /// The VM owns its core's PMU (config `pmu = true`): PMU fields pass.
    pub pmu: bool,
    /// The VM's interrupt controller is a virtual GICv3 (system-register
    /// CPU interface: GIC fields read 1); on a GICv2 board it is a GICv2
    /// with a memory-mapped CPU interface (GIC fields read 0).
    pub gicv3: bool,
}

/// What a VM sees of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// The hardware value, unchanged (also for signed fields such as FP,
    /// where 0xF means "not implemented").
    Pass,
    /// The hardware value, capped at this level (unsigned fields).
    Cap(u8),
    /// 1 for a VM with a virtual GICv3, 0 for a GICv2 one.
    GicV3,
    /// Always this value.
    Fixed(u8),
    /// Passed through when the VM owns its PMU, else 0.
    Pmu,
}

/// One 4-bit field at bit `shift`.
#[derive(Debug, Clone, Copy)]
struct Field {
    shift: u8,
    policy: Policy,
}

// Table entries are macros (struct literals) so the tables are promoted to
// statics; one shape, five names.
macro_rules! field {
    ($shift:expr, $policy:expr) => {
        Field {
            shift: $shift,
            policy: $policy,
        }
    };
}
macro_rules! pass {
    ($shift:expr) => {
        field!($shift, Policy::Pass)
    };
}
macro_rules! cap {
    ($shift:expr, $max:expr) => {
        field!($shift, Policy::Cap($max))
    };
}
macro_rules! gic {
    ($shift:expr) => {
        field!($shift, Policy::GicV3)
    };
}
macro_rules! fixed {
    ($shift:expr, $value:expr) => {
        field!($shift, Policy::Fixed($value))
    };
}
macro_rules! pmu {
    ($shift:expr) => {
        field!($shift, Policy::Pmu)
    };
}

/// All eight fields of a 32-bit AArch32 ID register passed (registers that
/// describe only instructions and memory-model properties of EL0/EL1).
const ALL32: &[Field] = &[
    pass!(0),
    pass!(4),
    pass!(8),
    pass!(12),
    pass!(16),
    pass!(20),
    pass!(24),
    pass!(28),
];

/// Highest debug architecture shown: Armv8.0 (DebugVer/CopDbg 6). The
/// debug registers are trapped and read as zero (see `guest_sysregs`), so
/// nothing newer is offered.
const DEBUG_V8: u8 = 6;

/// The whitelist of register `sysreg` (empty: the register reads as 0).
fn fields(sysreg: u32) -> &'static [Field] {
    match sysreg {
        // ---- AArch32 views (EL0 of an AArch64 guest may be AArch32) ----
        // ID_PFR0_EL1: State0-3, CSV2 capped like the AArch64 view, DIT.
        // AMU [23:20] and RAS [31:28] hidden.
        x if x == encode(3, 0, 0, 1, 0) => &[
            pass!(0),
            pass!(4),
            pass!(8),
            pass!(12),
            cap!(16, 1),
            pass!(24),
        ],
        // ID_PFR1_EL1: ProgMod, MProgMod, GenTimer; GIC = 1 (the virtual
        // GICv3's system-register interface). Security and Virtualization
        // (EL3/EL2 of AArch32) hidden.
        x if x == encode(3, 0, 0, 1, 1) => &[pass!(0), pass!(8), pass!(16), gic!(28)],
        // ID_DFR0_EL1: v8.0 coprocessor debug; PerfMon only with the PMU;
        // memory-mapped debug, trace and M-profile debug hidden.
        x if x == encode(3, 0, 0, 1, 2) => &[cap!(0, DEBUG_V8), pmu!(24)],
        // ID_MMFR0-3_EL1, ID_ISAR0-5_EL1, ID_ISAR6_EL1, MVFR0-2_EL1:
        // instruction-set and memory-model descriptions.
        x if x == encode(3, 0, 0, 1, 4)
            || x == encode(3, 0, 0, 1, 5)
            || x == encode(3, 0, 0, 1, 6)
            || x == encode(3, 0, 0, 1, 7) =>
        {
            ALL32
        }
        x if (encode(3, 0, 0, 2, 0)..=encode(3, 0, 0, 2, 5)).contains(&x)
            || x == encode(3, 0, 0, 2, 7) =>
        {
            ALL32
        }
        x if (encode(3, 0, 0, 3, 0)..=encode(3, 0, 0, 3, 2)).contains(&x) => ALL32,
        // ID_MMFR4_EL1: SpecSEI, AC2, CnP, HPDS, LSM, CCIDX; XNX and EVT
        // (stage-2 / EL2 controls) hidden.
        x if x == encode(3, 0, 0, 2, 6) => &[
            pass!(0),
            pass!(4),
            pass!(12),
            cap!(16, 1),
            pass!(20),
            pass!(24),
        ],
        // ID_PFR2_EL1: CSV3, SSBS; RAS_frac hidden.
        x if x == encode(3, 0, 0, 3, 4) => &[pass!(0), pass!(4)],
        // ID_DFR1_EL1: HPMN0 with the PMU; MTPMU hidden.
        x if x == encode(3, 0, 0, 3, 5) => &[pmu!(4)],
        // ID_MMFR5_EL1: ETS, nTLBPA.
        x if x == encode(3, 0, 0, 3, 6) => &[pass!(0), pass!(4)],

        // ---- AArch64 ----
        // ID_AA64PFR0_EL1: EL0 as is; EL1 AArch64 only (HCR_EL2.RW); no
        // EL2/EL3 for the guest; FP, AdvSIMD (signed); GIC = 1: the virtual
        // GICv3 CPU interface; DIT; CSV2 capped at 1 (SCXTNUM_ELx trap);
        // CSV3. Hidden: RAS (error records are the hypervisor's), SVE (state
        // not context-managed; CPTR_EL2.TZ traps it), SEL2, MPAM, AMU
        // (CPTR_EL2.TAM), RME.
        ID_AA64PFR0_EL1 => &[
            pass!(0),
            cap!(4, 1),
            pass!(16),
            pass!(20),
            gic!(24),
            pass!(48),
            cap!(56, 1),
            pass!(60),
        ],
        // ID_AA64PFR1_EL1: BT, SSBS, CSV2_frac capped at 1. Hidden: MTE
        // (HCR_EL2.ATA clear), RAS_frac, MPAM_frac, SME (CPTR_EL2.TSM),
        // RNDR_trap, NMI (the virtual GIC has no superpriority), MTE_frac,
        // GCS, THE, MTEX, DF2, PFAR (their controls need HCRX_EL2 bits we
        // leave clear).
        ID_AA64PFR1_EL1 => &[pass!(0), cap!(4, 2), cap!(32, 1)],
        // ID_AA64PFR2_EL1, ID_AA64ZFR0_EL1 (SVE), ID_AA64SMFR0_EL1 (SME),
        // ID_AA64FPFR0_EL1 (FPMR needs HCRX_EL2.EnFPM): hidden.

        // ID_AA64DFR0_EL1: v8.0 debug; PMUVer and HPMN0 only with the PMU;
        // BRPs, WRPs, CTX_CMPs as the hardware (the architecture needs at
        // least 2 each); DoubleLock 0xF (not implemented: OSDLR_EL1 is
        // emulated as zero). Hidden: trace (CPTR_EL2.TTA), SPE
        // (MDCR_EL2.TPMS), TRF, TRBE, MTPMU, BRBE, PMSS.
        ID_AA64DFR0_EL1 => &[
            cap!(0, DEBUG_V8),
            pmu!(8),
            pass!(12),
            pass!(20),
            pass!(28),
            fixed!(36, 0xf),
            pmu!(60),
        ],
        // ID_AA64DFR1/2_EL1, ID_AA64AFR0/1_EL1: hidden.

        // ID_AA64ISAR0_EL1: every instruction-set field except TME.
        ID_AA64ISAR0_EL1 => &[
            pass!(4),
            pass!(8),
            pass!(12),
            pass!(16),
            pass!(20),
            pass!(28),
            pass!(32),
            pass!(36),
            pass!(40),
            pass!(44),
            pass!(48),
            pass!(52),
            pass!(56),
            pass!(60),
        ],
        // ID_AA64ISAR1_EL1: every field except LS64 (needs HCRX_EL2.EnALS).
        // Pointer authentication (APA, API, GPA, GPI) is shown: HCR_EL2.API
        // and APK let EL1 use it, and the keys need no switching (one vCPU
        // per core, the hypervisor signs nothing).
        ID_AA64ISAR1_EL1 => &[
            pass!(0),
            pass!(4),
            pass!(8),
            pass!(12),
            pass!(16),
            pass!(20),
            pass!(24),
            pass!(28),
            pass!(32),
            pass!(36),
            pass!(40),
            pass!(44),
            pass!(48),
            pass!(52),
            pass!(56),
        ],
        // ID_AA64ISAR2_EL1: WFxT (WFI/WFE run untrapped, so WFIT/WFET
        // honour their timeout natively), RPRES, GPA3, APA3, MOPS
        // (HCRX_EL2.MSCEn is set for it), BC, PAC_frac, CLRBHB, PRFMSLC,
        // RPRFM, CSSC, LUT. Hidden: SYSREG_128, SYSINSTR_128, ATS1A.
        ID_AA64ISAR2_EL1 => &[
            pass!(0),
            pass!(4),
            pass!(8),
            pass!(12),
            pass!(16),
            pass!(20),
            pass!(24),
            pass!(28),
            pass!(40),
            pass!(48),
            pass!(52),
            pass!(56),
        ],
        // ID_AA64ISAR3_EL1: hidden.

        // ID_AA64MMFR0_EL1: PARange capped at 40 bits (VTCR_EL2.PS; the
        // stage-2 input is 39 bits, so the top of that range aborts like any
        // unowned address); ASIDBits, endianness, SNSMem, stage-1 granules
        // (signed for 4K/64K); no stage-2 granules (fixed 1, "not
        // supported": the VM has no EL2); ExS; ECV capped at 1 (the
        // self-synchronising counter views). FGT hidden (EL2 only).
        ID_AA64MMFR0_EL1 => &[
            cap!(0, 2),
            pass!(4),
            pass!(8),
            pass!(12),
            pass!(16),
            pass!(20),
            pass!(24),
            pass!(28),
            fixed!(32, 1),
            fixed!(36, 1),
            fixed!(40, 1),
            pass!(44),
            cap!(60, 1),
        ],
        // ID_AA64MMFR1_EL1: HAFDBS capped at 2 (3 needs TCR2), HPDS at 1
        // (HPDS2 hands PBHA bits to software), PAN, SpecSEI, ETS, AFP,
        // nTLBPA, TIDCP1, CMOW, ECBHB. Hidden: VMIDBits, VH, XNX, TWED, HCX
        // (EL2 features), LO (HCR_EL2.TLOR traps LORegions).
        ID_AA64MMFR1_EL1 => &[
            cap!(0, 2),
            cap!(12, 1),
            cap!(20, 3),
            pass!(24),
            pass!(36),
            pass!(44),
            pass!(48),
            pass!(52),
            pass!(56),
            pass!(60),
        ],
        // ID_AA64MMFR2_EL1: CnP, UAO, LSM, VARange, CCIDX (must match
        // CCSIDR_EL1, read untrapped), ST, AT, IDS, TTL, BBM, E0PD. Hidden:
        // IESB (needs RAS), NV, FWB, EVT (EL2 features).
        ID_AA64MMFR2_EL1 => &[
            pass!(0),
            pass!(4),
            pass!(8),
            pass!(16),
            pass!(20),
            pass!(28),
            pass!(32),
            pass!(36),
            pass!(48),
            pass!(52),
            pass!(60),
        ],
        // ID_AA64MMFR3_EL1: Spec_FPACC only. Hidden: TCRX, SCTLRX, S1PIE,
        // S2PIE, S1POE, S2POE, AIE, MEC, D128, SNERR, ANERR, SDERR, ADERR:
        // their EL1 registers need HCRX_EL2 enables we leave clear (TCR2En,
        // SCTLR2En) or are RAS/EL2 features.
        ID_AA64MMFR3_EL1 => &[pass!(60)],
        // ID_AA64MMFR4_EL1 and every other encoding: hidden.
        _ => &[],
    }
}

/// The value a VM with `vm` features reads for feature-ID register
/// `sysreg` when the hardware holds `hw`.
pub fn virtual_id_value(sysreg: u32, hw: u64, vm: VmFeatures) -> u64 {
    fields(sysreg).iter().fold(0, |acc, f| {
        let hw_field = (hw >> f.shift & 0xf) as u8;
        let v = match f.policy {
            Policy::Pass => hw_field,
            Policy::Cap(max) => hw_field.min(max),
            Policy::Fixed(v) => v,
            Policy::GicV3 => vm.gicv3 as u8,
            Policy::Pmu if vm.pmu => hw_field,
            Policy::Pmu => 0,
        };
        acc | (v as u64) << f.shift
    })
}

/// Field `shift` of an ID register value.
pub const fn field(value: u64, shift: u32) -> u64 {
    value >> shift & 0xf
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_PMU: VmFeatures = VmFeatures {
        pmu: false,
        gicv3: true,
    };

    /// Checks `(shift, value, what)` fields of an ID register value.
    fn expect_fields(v: u64, fields: &[(u32, u64, &str)]) {
        for &(shift, want, what) in fields {
            assert_eq!(field(v, shift), want, "{what} in {v:#x}");
        }
    }

    const WITH_PMU: VmFeatures = VmFeatures {
        pmu: true,
        gicv3: true,
    };

    /// Values QEMU 10.0 shows at EL2 for `-cpu max` (virt, virtualization=on).
    mod max {
        pub const PFR0: u64 = 0x1301_0011_2111_0222;
        pub const PFR1: u64 = 0x0000_0010_0100_0121;
        pub const DFR0: u64 = 0x1000_0000_1030_560a;
        pub const ISAR0: u64 = 0x1221_1111_1021_2120;
        pub const ISAR1: u64 = 0x0111_2111_1021_1502;
        pub const ISAR2: u64 = 0x0000_0000_0011_0012;
        pub const MMFR0: u64 = 0x2100_0323_1020_1126;
        pub const MMFR1: u64 = 0x0110_1120_1031_2122;
        pub const MMFR2: u64 = 0x1221_0111_1201_1011;
        pub const MMFR3: u64 = 0x1000_0000_0000_0000;
        pub const ZFR0: u64 = 0x0110_1101_0021_0021;
        pub const SMFR0: u64 = 0x80f1_00fd_0000_0000;
    }
    /// Values QEMU 10.0 shows at EL2 for `-cpu cortex-a72`.
    mod a72 {
        pub const PFR0: u64 = 0x0100_0222;
        pub const DFR0: u64 = 0x1030_5106;
        pub const ISAR0: u64 = 0x0001_1120;
        pub const MMFR0: u64 = 0x1124;
    }

    #[test]
    fn pfr0_of_max_shows_gic_and_hides_sve_ras_el2() {
        let v = virtual_id_value(ID_AA64PFR0_EL1, max::PFR0, NO_PMU);
        expect_fields(
            v,
            &[
                (0, 2, "EL0 AArch64+AArch32"),
                (4, 1, "EL1 AArch64 only"),
                (8, 0, "no EL2"),
                (12, 0, "no EL3"),
                (16, 1, "FP"),
                (20, 1, "AdvSIMD"),
                (24, 1, "GIC system registers"),
                (28, 0, "RAS hidden"),
                (32, 0, "SVE hidden"),
                (36, 0, "SEL2 hidden"),
                (48, 1, "DIT"),
                (56, 1, "CSV2 capped"),
                (60, 1, "CSV3"),
            ],
        );
        assert_eq!(v, 0x1101_0000_0111_0012);
    }

    #[test]
    fn pfr0_of_cortex_a72() {
        assert_eq!(
            virtual_id_value(ID_AA64PFR0_EL1, a72::PFR0, NO_PMU),
            0x0100_0012
        );
        // A GICv2-only core still reads GIC = 1: the VM's interface is the
        // virtual GICv3.
        assert_eq!(
            field(virtual_id_value(ID_AA64PFR0_EL1, 0x222, NO_PMU), 24),
            1
        );
        // A VM on a GICv2 board has no GIC system registers (Linux would
        // probe them), in either view.
        let v2 = VmFeatures {
            pmu: false,
            gicv3: false,
        };
        assert_eq!(
            field(virtual_id_value(ID_AA64PFR0_EL1, a72::PFR0, v2), 24),
            0
        );
        assert_eq!(
            field(virtual_id_value(encode(3, 0, 0, 1, 1), 1 << 28, v2), 28),
            0
        );
    }

    #[test]
    fn fp_not_implemented_stays_not_implemented() {
        // FP and AdvSIMD are signed: 0xF means absent and must not be capped.
        let hw = 0x00ff_0222;
        let v = virtual_id_value(ID_AA64PFR0_EL1, hw, NO_PMU);
        assert_eq!(field(v, 16), 0xf);
        assert_eq!(field(v, 20), 0xf);
    }

    #[test]
    fn pfr1_of_max_hides_mte_sme_nmi() {
        let v = virtual_id_value(ID_AA64PFR1_EL1, max::PFR1, NO_PMU);
        expect_fields(
            v,
            &[
                (0, 1, "BTI"),
                (4, 2, "SSBS"),
                (8, 0, "MTE hidden"),
                (24, 0, "SME hidden"),
                (36, 0, "NMI hidden"),
            ],
        );
        assert_eq!(v, 0x21);
    }

    #[test]
    fn sve_and_sme_feature_registers_read_zero() {
        assert_eq!(
            virtual_id_value(encode(3, 0, 0, 4, 4), max::ZFR0, NO_PMU),
            0
        );
        assert_eq!(
            virtual_id_value(encode(3, 0, 0, 4, 5), max::SMFR0, NO_PMU),
            0
        );
    }

    #[test]
    fn pmu_fields_follow_the_vm_grant() {
        for dfr0 in [max::DFR0, a72::DFR0] {
            let hidden = virtual_id_value(ID_AA64DFR0_EL1, dfr0, NO_PMU);
            assert_eq!(field(hidden, 8), 0, "PMUVer hidden");
            let shown = virtual_id_value(ID_AA64DFR0_EL1, dfr0, WITH_PMU);
            assert_eq!(field(shown, 8), field(dfr0, 8), "PMUVer passed");
            for v in [hidden, shown] {
                assert_eq!(field(v, 0), 6, "v8.0 debug");
                assert_eq!(field(v, 4), 0, "trace hidden");
                assert_eq!(field(v, 12), field(dfr0, 12), "BRPs");
                assert_eq!(field(v, 20), field(dfr0, 20), "WRPs");
                expect_fields(
                    v,
                    &[
                        (32, 0, "SPE hidden"),
                        (36, 0xf, "no double lock"),
                        (44, 0, "TRBE hidden"),
                    ],
                );
            }
        }
        let id_dfr0 = encode(3, 0, 0, 1, 2);
        assert_eq!(virtual_id_value(id_dfr0, 0x0600_000a, NO_PMU), 0x6);
        assert_eq!(
            virtual_id_value(id_dfr0, 0x0600_000a, WITH_PMU),
            0x0600_0006
        );
    }

    #[test]
    fn isar_registers_of_max() {
        let isar0 = virtual_id_value(ID_AA64ISAR0_EL1, max::ISAR0, NO_PMU);
        assert_eq!(isar0, max::ISAR0, "max has no TME: ISAR0 passes whole");
        assert_eq!(
            field(virtual_id_value(ID_AA64ISAR0_EL1, 1 << 24, NO_PMU), 24),
            0,
            "TME hidden"
        );
        let isar1 = virtual_id_value(ID_AA64ISAR1_EL1, max::ISAR1, NO_PMU);
        assert_eq!(isar1, max::ISAR1, "pointer authentication shown");
        assert_eq!(field(isar1, 8), 5, "API");
        let isar2 = virtual_id_value(ID_AA64ISAR2_EL1, max::ISAR2, NO_PMU);
        assert_eq!(field(isar2, 0), 2, "WFxT shown: WFI/WFE are not trapped");
        assert_eq!(field(isar2, 16), 1, "MOPS");
        assert_eq!(
            virtual_id_value(ID_AA64ISAR0_EL1, a72::ISAR0, NO_PMU),
            a72::ISAR0
        );
    }

    #[test]
    fn mmfr_registers_of_max_hide_el2_features() {
        let m0 = virtual_id_value(ID_AA64MMFR0_EL1, max::MMFR0, NO_PMU);
        expect_fields(
            m0,
            &[
                (0, 2, "PARange capped at 40 bits"),
                (28, 1, "TGran4 (LPA2) kept"),
                (40, 1, "no stage-2 4K granule for a VM"),
                (56, 0, "FGT hidden"),
                (60, 1, "ECV capped"),
            ],
        );
        let m1 = virtual_id_value(ID_AA64MMFR1_EL1, max::MMFR1, NO_PMU);
        expect_fields(
            m1,
            &[
                (4, 0, "VMIDBits hidden"),
                (8, 0, "VHE hidden"),
                (16, 0, "LOR hidden"),
                (20, 3, "PAN3"),
                (40, 0, "HCX hidden"),
            ],
        );
        let m2 = virtual_id_value(ID_AA64MMFR2_EL1, max::MMFR2, NO_PMU);
        expect_fields(
            m2,
            &[
                (12, 0, "IESB hidden"),
                (24, 0, "NV hidden"),
                (40, 0, "FWB hidden"),
            ],
        );
        assert_eq!(field(m2, 20), field(max::MMFR2, 20), "CCIDX as CCSIDR");
        assert_eq!(
            virtual_id_value(ID_AA64MMFR3_EL1, max::MMFR3, NO_PMU),
            max::MMFR3
        );
        assert_eq!(
            virtual_id_value(ID_AA64MMFR3_EL1, 0x0000_0000_0011_1111, NO_PMU),
            0,
            "TCR2, SCTLR2, S1PIE, S1POE hidden"
        );
        assert_eq!(
            virtual_id_value(ID_AA64MMFR0_EL1, a72::MMFR0, NO_PMU),
            0x0000_0111_0000_1122
        );
    }

    #[test]
    fn unknown_fields_and_registers_read_zero() {
        let all = u64::MAX;
        // Every bit outside a listed field is cleared.
        assert_eq!(
            virtual_id_value(ID_AA64PFR1_EL1, all, NO_PMU),
            0xf | 0x2 << 4 | 1 << 32
        );
        for crm in 1..=7 {
            for op2 in 0..8 {
                let r = encode(3, 0, 0, crm, op2);
                let v = virtual_id_value(r, all, WITH_PMU);
                assert_eq!(v & !fields(r).iter().fold(0, |m, f| m | 0xf << f.shift), 0);
            }
        }
        assert_eq!(virtual_id_value(encode(3, 0, 0, 3, 3), all, NO_PMU), 0);
        assert_eq!(virtual_id_value(encode(3, 0, 0, 7, 4), all, NO_PMU), 0);
        assert_eq!(virtual_id_value(encode(3, 0, 0, 4, 2), all, NO_PMU), 0);
    }
}
