//! Which guest operations trap to EL2: the values of HCR_EL2, MDCR_EL2,
//! CPTR_EL2 and (when the core has them) HCRX_EL2 and the fine-grained trap
//! registers, computed from the core's real ID registers and the VM's
//! configuration. Pure, so host tests check the policy; `cpu.rs` writes the
//! result.
//!
//! The policy, KVM style: everything a VM may use runs untrapped; what the
//! ID registers hide ([`super::id_fields`]) traps wherever the architecture
//! has a trap for it, and the trapped access nobody emulates becomes an
//! undefined-instruction exception in the guest. Bits that only exist with
//! a feature are set only when the core has that feature (they are RES0
//! otherwise).

use super::id_fields::{field, VmFeatures};
use aarch64_cpu::registers::{CPTR_EL2, HCR_EL2};
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// HCR_EL2 bits aarch64-cpu does not name.
    HCR_MORE [
        /// Trap WFI (and WFIT).
        TWI OFFSET(13) NUMBITS(1) [],
        /// Trap GMID_EL1 (FEAT_MTE2).
        TID5 OFFSET(58) NUMBITS(1) []
    ],
    /// MDCR_EL2 (non-VHE), Arm ARM D19.2.
    MDCR [
        /// Event counters reserved for EL2 start at HPMN.
        HPMN OFFSET(0) NUMBITS(5) [],
        /// Trap PMCR_EL0.
        TPMCR OFFSET(5) NUMBITS(1) [],
        /// Trap every PMU register.
        TPM OFFSET(6) NUMBITS(1) [],
        /// Trap debug registers (DBGB*, DBGW*, MDSCR_EL1, DCC...).
        TDA OFFSET(9) NUMBITS(1) [],
        /// Trap the OS lock and power-down registers.
        TDOSA OFFSET(10) NUMBITS(1) [],
        /// Trap the debug ROM address registers.
        TDRA OFFSET(11) NUMBITS(1) [],
        /// SPE buffer owner (0b00: EL2; EL1 accesses trap).
        E2PB OFFSET(12) NUMBITS(2) [],
        /// Trap the statistical-profiling (SPE) registers.
        TPMS OFFSET(14) NUMBITS(1) [],
        /// Trap TRFCR_EL1 (FEAT_TRF).
        TTRF OFFSET(19) NUMBITS(1) [],
        /// TRBE owner (0b00: EL2; EL1 accesses trap).
        E2TB OFFSET(24) NUMBITS(2) []
    ],
    /// CPTR_EL2 (non-VHE layout) bits aarch64-cpu does not name.
    CPTR_MORE [
        /// Trap SVE (RES1 without SVE).
        TZ OFFSET(8) NUMBITS(1) [],
        /// Trap FP/SIMD.
        TFP OFFSET(10) NUMBITS(1) [],
        /// Trap SME (RES1 without SME).
        TSM OFFSET(12) NUMBITS(1) [],
        /// Trap trace registers.
        TTA OFFSET(20) NUMBITS(1) []
    ],
    /// HCRX_EL2 (FEAT_HCX). Zero is the strict value: LS64, FPMR, GCS,
    /// TCR2_EL1, SCTLR2_EL1 and the other newer EL1 controls trap or are
    /// disabled; only what the VM is shown is enabled here.
    HCRX [
        /// Memory Copy and Memory Set instructions enabled at EL1/EL0.
        MSCEN OFFSET(11) NUMBITS(1) [],
        /// Trap MSR writes of ALLINT (FEAT_NMI, hidden).
        TALLINT OFFSET(6) NUMBITS(1) []
    ]
}

/// RES1 bits of CPTR_EL2 in the non-VHE layout (bits 13, 9 and 7:0, plus 12
/// and 8 without SME/SVE, where they are the TSM/TZ traps we set anyway).
const CPTR_RES1: u64 = 0x22ff;

/// The core's feature-ID registers the trap policy depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct HwIds {
    /// ID_AA64PFR0_EL1.
    pub pfr0: u64,
    /// ID_AA64PFR1_EL1.
    pub pfr1: u64,
    /// ID_AA64DFR0_EL1.
    pub dfr0: u64,
    /// ID_AA64ISAR1_EL1.
    pub isar1: u64,
    /// ID_AA64ISAR2_EL1.
    pub isar2: u64,
    /// ID_AA64MMFR0_EL1.
    pub mmfr0: u64,
    /// ID_AA64MMFR1_EL1.
    pub mmfr1: u64,
    /// PMCR_EL0.N: number of event counters.
    pub pmu_counters: u8,
}

impl HwIds {
    fn has_pauth(&self) -> bool {
        // APA, API, GPA, GPI in ISAR1; APA3, GPA3 in ISAR2.
        [4, 8, 24, 28].iter().any(|&s| field(self.isar1, s) != 0)
            || [8, 12].iter().any(|&s| field(self.isar2, s) != 0)
    }
    fn has_amu(&self) -> bool {
        field(self.pfr0, 44) != 0
    }
    fn has_mpam(&self) -> bool {
        field(self.pfr0, 40) != 0 || field(self.pfr1, 16) != 0
    }
    fn has_mte2(&self) -> bool {
        field(self.pfr1, 8) >= 2
    }
    fn has_lor(&self) -> bool {
        field(self.mmfr1, 16) != 0
    }
    fn has_hcx(&self) -> bool {
        field(self.mmfr1, 40) != 0
    }
    fn has_nmi(&self) -> bool {
        field(self.pfr1, 36) != 0
    }
    fn has_mops(&self) -> bool {
        field(self.isar2, 16) != 0
    }
    /// FEAT_FGT level (0 none, 1 FGT, 2 FGT2).
    pub fn fgt(&self) -> u64 {
        field(self.mmfr0, 56)
    }
    fn has_spe(&self) -> bool {
        field(self.dfr0, 32) != 0
    }
    fn has_trf(&self) -> bool {
        field(self.dfr0, 40) != 0
    }
    fn has_trbe(&self) -> bool {
        field(self.dfr0, 44) != 0
    }
    fn has_pmu(&self) -> bool {
        let v = field(self.dfr0, 8);
        v != 0 && v != 0xf
    }
}

/// The EL2 trap registers for one VM on one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traps {
    /// HCR_EL2.
    pub hcr: u64,
    /// MDCR_EL2.
    pub mdcr: u64,
    /// CPTR_EL2.
    pub cptr: u64,
    /// HCRX_EL2, when the core has it.
    pub hcrx: Option<u64>,
    /// MPAM2_EL2 trap bits, when the core has MPAM.
    pub mpam2: Option<u64>,
    /// FEAT_FGT level: the fine-grained trap registers (and their FGT2
    /// siblings at level 2) are written as 0, which traps exactly the
    /// newer registers with negative-polarity bits (SME's TPIDR2_EL0 and
    /// SMPRI, PIE/POE, GCS, LS64, BRBE...) and nothing older.
    pub fgt: u64,
}

/// MPAM2_EL2.TRAPMPAM1EL1 | TRAPMPAM0EL1: EL1/EL0 MPAM registers trap.
const MPAM2_TRAP_EL1_EL0: u64 = 1 << 48 | 1 << 49;

/// Computes the traps for a VM with `vm` features on a core with `hw`.
pub fn traps(hw: &HwIds, vm: VmFeatures) -> Traps {
    let mut hcr = (HCR_EL2::VM::Enable
        + HCR_EL2::SWIO::SET
        + HCR_EL2::FMO::EnableVirtualFIQ
        + HCR_EL2::IMO::EnableVirtualIRQ
        + HCR_EL2::AMO::SET
        + HCR_EL2::FB::SET
        + HCR_EL2::BSU::InnerShareable
        + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
        // Feature-ID registers: emulated from the whitelist.
        + HCR_EL2::TID3::SET
        // Implementation-defined registers and ACTLR_EL1: shared across a
        // cluster on real cores, never the guest's.
        + HCR_EL2::TIDCP::SET
        + HCR_EL2::TACR::SET
        // Set/way maintenance: becomes clean+invalidate of the VM's own RAM.
        + HCR_EL2::TSW::SET
        // RAS error records are the hypervisor's.
        + HCR_EL2::TERR::SET
        + HCR_EL2::RW::EL1IsAarch64)
        .value;
    // WFI/WFE are not trapped: one vCPU per core, and the virtual GIC's
    // list registers and forwarded interrupts wake the core as hardware
    // would.
    if hw.has_lor() {
        hcr |= HCR_EL2::TLOR::SET.value;
    }
    if hw.has_pauth() {
        // Pointer authentication works untrapped: the keys are EL1
        // registers of a core that runs one vCPU forever, and the
        // hypervisor signs nothing, so there is nothing to switch.
        hcr |= (HCR_EL2::API::SET + HCR_EL2::APK::SET).value;
    }
    if hw.has_mte2() {
        hcr |= HCR_MORE::TID5::SET.value;
    }
    // HCR_EL2.ATA stays clear: MTE tag accesses and registers trap.

    let pmu = vm.pmu && hw.has_pmu();
    let mut mdcr = (MDCR::TDA::SET + MDCR::TDOSA::SET + MDCR::TDRA::SET).value;
    if hw.has_pmu() {
        // HPMN = N: every counter belongs to the guest's range (counting at
        // EL2 stays allowed for a granted PMU: the benchmark needs it).
        mdcr |= MDCR::HPMN.val(hw.pmu_counters as u64 & 0x1f).value;
        if !pmu {
            mdcr |= (MDCR::TPM::SET + MDCR::TPMCR::SET).value;
        }
    }
    if hw.has_spe() {
        mdcr |= (MDCR::TPMS::SET + MDCR::E2PB.val(0)).value;
    }
    if hw.has_trf() {
        mdcr |= MDCR::TTRF::SET.value;
    }
    if hw.has_trbe() {
        mdcr |= MDCR::E2TB.val(0).value;
    }

    // FP/SIMD untrapped (the hypervisor is soft-float); SVE, SME, trace
    // and (when present) the activity monitors trap.
    let mut cptr =
        CPTR_RES1 | (CPTR_MORE::TZ::SET + CPTR_MORE::TSM::SET + CPTR_MORE::TTA::SET).value;
    if hw.has_amu() {
        cptr |= CPTR_EL2::TAM::SET.value;
    }

    let hcrx = hw.has_hcx().then(|| {
        let mut v = 0;
        if hw.has_mops() {
            v |= HCRX::MSCEN::SET.value;
        }
        if hw.has_nmi() {
            v |= HCRX::TALLINT::SET.value;
        }
        v
    });
    Traps {
        hcr,
        mdcr,
        cptr,
        hcrx,
        mpam2: hw.has_mpam().then_some(MPAM2_TRAP_EL1_EL0),
        fgt: hw.fgt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10.0 `-cpu max` at EL2.
    const MAX: HwIds = HwIds {
        pfr0: 0x1301_0011_2111_0222,
        pfr1: 0x0000_0010_0100_0121,
        dfr0: 0x1000_0000_1030_560a,
        isar1: 0x0111_2111_1021_1502,
        isar2: 0x0000_0000_0011_0012,
        mmfr0: 0x2100_0323_1020_1126,
        mmfr1: 0x0110_1120_1031_2122,
        pmu_counters: 6,
    };
    /// QEMU 10.0 `-cpu cortex-a72` at EL2.
    const A72: HwIds = HwIds {
        pfr0: 0x0100_0222,
        pfr1: 0,
        dfr0: 0x1030_5106,
        isar1: 0,
        isar2: 0,
        mmfr0: 0x1124,
        mmfr1: 0,
        pmu_counters: 6,
    };
    const NO_PMU: VmFeatures = VmFeatures {
        pmu: false,
        gicv3: true,
    };
    const PMU: VmFeatures = VmFeatures {
        pmu: true,
        gicv3: true,
    };

    fn bit(v: u64, n: u32) -> bool {
        v >> n & 1 != 0
    }

    #[test]
    fn hcr_traps_what_a_partition_must_not_reach() {
        for hw in [MAX, A72] {
            let t = traps(&hw, NO_PMU);
            for (n, name) in [
                (0, "VM"),
                (18, "TID3"),
                (19, "TSC"),
                (20, "TIDCP"),
                (21, "TACR"),
                (22, "TSW"),
                (31, "RW"),
                (36, "TERR"),
            ] {
                assert!(bit(t.hcr, n), "{name}");
            }
            assert!(!bit(t.hcr, 56), "ATA clear: MTE traps");
            assert!(!bit(t.hcr, 34) && !bit(t.hcr, 27), "no E2H, no TGE");
        }
    }

    #[test]
    fn feature_dependent_hcr_bits_only_with_the_feature() {
        let max = traps(&MAX, NO_PMU);
        assert!(bit(max.hcr, 35), "TLOR with LOR");
        assert!(bit(max.hcr, 40) && bit(max.hcr, 41), "APK/API with PAuth");
        let a72 = traps(&A72, NO_PMU);
        assert!(!bit(a72.hcr, 35) && !bit(a72.hcr, 40) && !bit(a72.hcr, 41));
        assert!(!bit(a72.hcr, 58) && !bit(max.hcr, 58), "TID5 needs MTE2");
        let mte2 = HwIds {
            pfr1: 2 << 8,
            ..A72
        };
        assert!(bit(traps(&mte2, NO_PMU).hcr, 58));
    }

    #[test]
    fn pmu_and_debug_trap_unless_granted() {
        for hw in [MAX, A72] {
            let t = traps(&hw, NO_PMU);
            assert!(bit(t.mdcr, 5) && bit(t.mdcr, 6), "TPMCR, TPM");
            assert!(bit(t.mdcr, 9) && bit(t.mdcr, 10) && bit(t.mdcr, 11));
            assert_eq!(t.mdcr & 0x1f, hw.pmu_counters as u64);
            let g = traps(&hw, PMU);
            assert!(!bit(g.mdcr, 5) && !bit(g.mdcr, 6), "granted PMU untrapped");
            assert!(bit(g.mdcr, 9), "debug still trapped");
        }
    }

    #[test]
    fn cptr_traps_sve_sme_trace_not_fp() {
        let t = traps(&MAX, NO_PMU);
        assert!(bit(t.cptr, 8) && bit(t.cptr, 12) && bit(t.cptr, 20));
        assert!(!bit(t.cptr, 10), "FP is the guest's");
        assert!(!bit(t.cptr, 30), "no AMU on max: TAM is RES0");
        let amu = HwIds {
            pfr0: A72.pfr0 | 1 << 44,
            ..A72
        };
        assert!(bit(traps(&amu, NO_PMU).cptr, 30), "TAM with AMU");
    }

    #[test]
    fn hcrx_enables_only_what_is_shown() {
        assert_eq!(traps(&A72, NO_PMU).hcrx, None);
        let h = traps(&MAX, NO_PMU).hcrx.expect("max has HCX");
        assert!(bit(h, 11), "MOPS shown, so MSCEn");
        assert!(bit(h, 6), "NMI hidden, ALLINT writes trap");
        assert_eq!(
            h & !(1 << 11 | 1 << 6),
            0,
            "TCR2En, SCTLR2En, GCSEn... clear"
        );
        assert_eq!(traps(&MAX, NO_PMU).fgt, 1);
        assert_eq!(traps(&A72, NO_PMU).fgt, 0);
    }
}
