//! ESR_EL2 decoding: turns an exception syndrome into an arch-neutral
//! [`Exit`]. Pure: the caller supplies the syndrome and fault addresses.

use crate::exit::{AccessWidth, Exit};

/// Exception classes (ESR_ELx.EC) this hypervisor handles.
pub mod ec {
    /// WFI or WFE trapped.
    pub const WFX: u32 = 0x01;
    /// HVC from AArch64.
    pub const HVC64: u32 = 0x16;
    /// SMC from AArch64.
    pub const SMC64: u32 = 0x17;
    /// MSR/MRS/system instruction trapped.
    pub const SYS64: u32 = 0x18;
    /// Instruction abort from a lower EL.
    pub const IABT_LOW: u32 = 0x20;
    /// Data abort from a lower EL.
    pub const DABT_LOW: u32 = 0x24;
    /// Data abort taken without a change of EL (as injected into EL1).
    pub const DABT_CUR: u32 = 0x25;
    /// Instruction abort taken without a change of EL.
    pub const IABT_CUR: u32 = 0x21;
    /// Unknown reason (used for injected undefined instructions).
    pub const UNKNOWN: u32 = 0x00;
}

/// Bits of the ISS of a data abort.
mod dabt {
    pub const ISV: u64 = 1 << 24;
    pub const SAS_SHIFT: u32 = 22;
    pub const SSE: u64 = 1 << 21;
    pub const SRT_SHIFT: u32 = 16;
    pub const SF: u64 = 1 << 15;
    pub const FNV: u64 = 1 << 10;
    pub const S1PTW: u64 = 1 << 7;
    pub const WNR: u64 = 1 << 6;
}

/// The exception class of a syndrome.
#[inline(always)]
pub const fn exception_class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3f) as u32
}

/// Whether the trapped instruction was 32 bits long (ESR.IL).
#[inline(always)]
pub const fn instruction_is_32bit(esr: u64) -> bool {
    esr & (1 << 25) != 0
}

/// Guest-physical address of a stage-2 abort: page from HPFAR_EL2.FIPA,
/// offset from FAR_EL2.
#[inline(always)]
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar >> 4) & ((1 << 40) - 1)) << 12 | (far & 0xfff)
}

/// Whether a data abort (EC 0x24) can be emulated as an MMIO access with
/// the syndrome alone (ISV set, FAR valid, not a stage-1 walk).
#[inline(always)]
pub const fn dabt_has_syndrome(esr: u64) -> bool {
    esr & dabt::ISV != 0 && esr & (dabt::FNV | dabt::S1PTW) == 0
}

/// The common MMIO trap in one test: a stage-2 translation fault (no
/// mapping at the IPA, any level) with the syndrome valid (ISV set, FAR
/// valid, not a stage-1 walk). Implies [`dabt_has_syndrome`] and not
/// [`abort_is_permission_fault`]; every other data abort takes the full
/// classification.
#[inline(always)]
pub const fn dabt_is_plain_mmio(esr: u64) -> bool {
    esr & (dabt::ISV | dabt::FNV | dabt::S1PTW | 0b11_1100) == dabt::ISV | 0b00_0100
}

/// Whether a data abort needs the instruction decoded (ISV clear) and can be
/// (FAR valid, not a stage-1 walk).
#[inline(always)]
pub const fn dabt_needs_decode(esr: u64) -> bool {
    esr & dabt::ISV == 0 && esr & (dabt::FNV | dabt::S1PTW) == 0
}

/// Whether a data or instruction abort is a permission fault (DFSC/IFSC
/// `0b0011xx`, any level): the page is mapped but not for this access, as
/// a write to a read-only inter-VM channel view. Never an MMIO access.
#[inline(always)]
pub const fn abort_is_permission_fault(esr: u64) -> bool {
    esr & 0b11_1100 == 0b00_1100
}

/// Whether a data abort is a write.
#[inline(always)]
pub const fn dabt_is_write(esr: u64) -> bool {
    esr & dabt::WNR != 0
}

/// Decodes a trap from a lower EL into an [`Exit`].
///
/// `ipa` is only read for aborts (see [`fault_ipa`]).
#[inline(always)]
pub fn decode(esr: u64, ipa: u64) -> Exit {
    match exception_class(esr) {
        ec::HVC64 => Exit::Call { smc: false },
        ec::SMC64 => Exit::Call { smc: true },
        ec::DABT_LOW if dabt_has_syndrome(esr) => decode_mmio(esr, ipa),
        ec::DABT_LOW | ec::IABT_LOW => Exit::GuestFault { addr: ipa },
        ec::SYS64 => {
            let (sysreg, reg, is_read) = decode_sysreg_iss(esr);
            if is_read {
                Exit::SysRegRead { sysreg, reg }
            } else {
                Exit::SysRegWrite { sysreg, reg }
            }
        }
        ec::WFX if esr & 1 == 0 => Exit::Halt,
        ec::WFX => Exit::WaitEvent,
        _ => Exit::Unknown { syndrome: esr },
    }
}

/// The MMIO access of a data abort whose syndrome is valid (the caller
/// checked [`dabt_has_syndrome`] or [`dabt_is_plain_mmio`]).
#[inline(always)]
pub fn decode_mmio(esr: u64, ipa: u64) -> Exit {
    let width = AccessWidth::from_log2(((esr >> dabt::SAS_SHIFT) & 3) as u32);
    let reg = ((esr >> dabt::SRT_SHIFT) & 0x1f) as u8;
    if dabt_is_write(esr) {
        Exit::MmioWrite {
            addr: ipa,
            width,
            reg,
        }
    } else {
        Exit::MmioRead {
            addr: ipa,
            width,
            reg,
            sign_extend: esr & dabt::SSE != 0,
            reg_is_64: esr & dabt::SF != 0,
        }
    }
}

/// Splits the ISS of an EC 0x18 trap into (register encoding as in
/// [`super::sysreg::SysReg`], transfer register Rt, is-read).
///
/// ISS layout: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] Rt[9:5] CRm[4:1] Dir[0].
#[inline(always)]
pub const fn decode_sysreg_iss(esr: u64) -> (u32, u8, bool) {
    let iss = esr as u32 & 0x01ff_ffff;
    let op0 = (iss >> 20) & 3;
    let op2 = (iss >> 17) & 7;
    let op1 = (iss >> 14) & 7;
    let crn = (iss >> 10) & 0xf;
    let rt = ((iss >> 5) & 0x1f) as u8;
    let crm = (iss >> 1) & 0xf;
    let is_read = iss & 1 != 0;
    (super::sysreg::encode(op0, op1, crn, crm, op2), rt, is_read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(ec: u32, iss: u64) -> u64 {
        (ec as u64) << 26 | 1 << 25 | iss
    }

    #[test]
    fn permission_faults_are_told_from_translation_faults() {
        // str w1, [x0] to a read-only page: ISV, SAS=2, WnR, DFSC 0b001111
        // (permission fault, level 3).
        let perm = esr(
            ec::DABT_LOW,
            dabt::ISV | 2 << dabt::SAS_SHIFT | dabt::WNR | 0x0f,
        );
        assert!(abort_is_permission_fault(perm));
        assert!(abort_is_permission_fault(esr(ec::DABT_LOW, 0x0d)));
        // Translation faults (DFSC 0b0001xx) are MMIO candidates.
        assert!(!abort_is_permission_fault(esr(
            ec::DABT_LOW,
            dabt::ISV | 0x07
        )));
        assert!(!abort_is_permission_fault(esr(ec::DABT_LOW, 0x05)));
        // Access-flag faults (0b0010xx) are not permission faults either.
        assert!(!abort_is_permission_fault(esr(ec::DABT_LOW, 0x0b)));
    }

    #[test]
    fn plain_mmio_is_a_translation_fault_with_a_valid_syndrome() {
        const ISV: u64 = 1 << 24;
        const DABT: u64 = 0x24 << 26 | 1 << 25;
        for level in 0..4 {
            let esr = DABT | ISV | 0b00_0100 | level | 1 << 6;
            assert!(dabt_is_plain_mmio(esr), "translation fault, level {level}");
            assert!(dabt_has_syndrome(esr) && !abort_is_permission_fault(esr));
            assert!(!dabt_is_plain_mmio(esr & !ISV), "ISV clear");
            assert!(!dabt_is_plain_mmio(esr | 1 << 10), "FnV");
            assert!(!dabt_is_plain_mmio(esr | 1 << 7), "stage-1 walk");
            let permission = esr & !0b11_1111 | 0b00_1100 | level;
            assert!(!dabt_is_plain_mmio(permission));
            assert!(abort_is_permission_fault(permission));
            let access_flag = esr & !0b11_1111 | 0b00_1000 | level;
            assert!(!dabt_is_plain_mmio(access_flag), "access flag: full path");
        }
    }

    #[test]
    fn hvc_and_smc_are_calls() {
        assert_eq!(decode(esr(ec::HVC64, 0), 0), Exit::Call { smc: false });
        assert_eq!(decode(esr(ec::SMC64, 0), 0), Exit::Call { smc: true });
    }

    #[test]
    fn data_abort_with_syndrome_decodes_read() {
        // ldrsh x3, [...] : ISV, SAS=1 (half), SSE, SRT=3, SF
        let iss =
            dabt::ISV | 1 << dabt::SAS_SHIFT | dabt::SSE | 3 << dabt::SRT_SHIFT | dabt::SF | 0x07;
        assert_eq!(
            decode(esr(ec::DABT_LOW, iss), 0x0900_0018),
            Exit::MmioRead {
                addr: 0x0900_0018,
                width: AccessWidth::Half,
                reg: 3,
                sign_extend: true,
                reg_is_64: true
            }
        );
    }

    #[test]
    fn data_abort_with_syndrome_decodes_write() {
        let iss = dabt::ISV | 2 << dabt::SAS_SHIFT | 30 << dabt::SRT_SHIFT | dabt::WNR | 0x06;
        assert_eq!(
            decode(esr(ec::DABT_LOW, iss), 0x0900_0000),
            Exit::MmioWrite {
                addr: 0x0900_0000,
                width: AccessWidth::Word,
                reg: 30
            }
        );
    }

    #[test]
    fn data_abort_without_syndrome_or_on_walk_is_fault() {
        assert!(dabt_needs_decode(esr(ec::DABT_LOW, 0x07)));
        assert_eq!(
            decode(esr(ec::DABT_LOW, 0x07), 0x1000),
            Exit::GuestFault { addr: 0x1000 }
        );
        let walk = dabt::ISV | dabt::S1PTW | 0x07;
        assert!(!dabt_needs_decode(esr(ec::DABT_LOW, walk)));
        assert_eq!(
            decode(esr(ec::DABT_LOW, walk), 0x2000),
            Exit::GuestFault { addr: 0x2000 }
        );
    }

    #[test]
    fn instruction_abort_is_fault() {
        assert_eq!(
            decode(esr(ec::IABT_LOW, 0x07), 0x5000),
            Exit::GuestFault { addr: 0x5000 }
        );
    }

    #[test]
    fn fault_ipa_joins_hpfar_and_far() {
        // HPFAR_EL2.FIPA holds IPA[47:12] at bits [43:4].
        let hpfar = (0x0900_0000u64 >> 12) << 4;
        assert_eq!(fault_ipa(hpfar, 0xffff_0000_0000_0018), 0x0900_0018);
    }

    #[test]
    fn sysreg_trap_decodes_id_aa64pfr0_read() {
        // mrs x5, ID_AA64PFR0_EL1: op0=3 op1=0 CRn=0 CRm=4 op2=0, Rt=5, read
        let iss = 3 << 20 | 5 << 5 | 4 << 1 | 1;
        assert_eq!(
            decode(esr(ec::SYS64, iss), 0),
            Exit::SysRegRead {
                sysreg: crate::arch::aarch64::sysreg::ID_AA64PFR0_EL1,
                reg: 5
            }
        );
        let write = iss & !1;
        assert!(matches!(
            decode(esr(ec::SYS64, write), 0),
            Exit::SysRegWrite { reg: 5, .. }
        ));
    }

    #[test]
    fn wfi_and_wfe() {
        assert_eq!(decode(esr(ec::WFX, 0), 0), Exit::Halt);
        assert_eq!(decode(esr(ec::WFX, 1), 0), Exit::WaitEvent);
    }

    #[test]
    fn unknown_class_keeps_syndrome() {
        let s = esr(0x07, 0);
        assert_eq!(decode(s, 0), Exit::Unknown { syndrome: s });
    }
}
