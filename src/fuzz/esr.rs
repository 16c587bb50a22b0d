//! `esr_decode`: every syndrome a lower EL can produce decodes without a
//! panic into the exit the Arm ARM field layout says, and prints.

use crate::arch::aarch64::esr::{self, ec};
use crate::arch::aarch64::sysreg;
use crate::exit::Exit;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};

/// Syndromes: a class the decoder handles (or any class), any ISS, and
/// sometimes junk in the upper half (ISS2 and RES0 bits).
fn syndrome() -> impl Strategy<Value = u64> {
    let class = prop_oneof![
        Just(ec::DABT_LOW),
        Just(ec::IABT_LOW),
        Just(ec::SYS64),
        Just(ec::HVC64),
        Just(ec::SMC64),
        Just(ec::WFX),
        0u32..64,
    ];
    let high = prop_oneof![3 => Just(0u64), 1 => any::<u64>().prop_map(|h| h << 32)];
    // Half the time an ISS with a valid syndrome (ISV set, FnV and S1PTW
    // clear), which random bits give only one time in eight.
    let iss = prop_oneof![
        0u64..1 << 25,
        (0u64..1 << 25).prop_map(|i| i & !(1 << 10 | 1 << 7) | 1 << 24)
    ];
    (class, any::<bool>(), iss, high).prop_map(|(class, il, iss, high)| {
        high | u64::from(class) << 26 | u64::from(il) << 25 | iss
    })
}

fn bit(v: u64, n: u32) -> bool {
    v >> n & 1 != 0
}

fn field(v: u64, lsb: u32, bits: u32) -> u64 {
    v >> lsb & ((1 << bits) - 1)
}

#[test]
fn fuzz_esr_decode() {
    let input = (syndrome(), any::<u64>(), any::<u64>());
    run_classified("esr_decode", input, |(esr, hpfar, far)| {
        let ipa = esr::fault_ipa(hpfar, far);
        check(ipa & 0xfff == far & 0xfff && ipa >> 52 == 0, || {
            format!("fault_ipa({hpfar:#x}, {far:#x}) = {ipa:#x}")
        })?;
        let exit = esr::decode(esr, ipa);
        // Exits are logged: formatting must not panic either.
        let _ = format!("{exit}");
        let class = field(esr, 26, 6) as u32;
        check(esr::exception_class(esr) == class, || "class".into())?;
        let expected_fault = Exit::GuestFault { addr: ipa };
        match class {
            ec::HVC64 => check(exit == Exit::Call { smc: false }, || format!("{exit:?}"))?,
            ec::SMC64 => check(exit == Exit::Call { smc: true }, || format!("{exit:?}"))?,
            ec::IABT_LOW => check(exit == expected_fault, || format!("{exit:?}"))?,
            ec::DABT_LOW => data_abort(esr, ipa, exit)?,
            ec::SYS64 => sysreg_trap(esr, exit)?,
            ec::WFX => {
                let want = if bit(esr, 0) {
                    Exit::WaitEvent
                } else {
                    Exit::Halt
                };
                check(exit == want, || format!("{exit:?}"))?
            }
            _ => check(exit == Exit::Unknown { syndrome: esr }, || {
                format!("class {class:#x} gave {exit:?}")
            })?,
        }
        Ok(Some(match exit {
            Exit::MmioRead { .. } | Exit::MmioWrite { .. } => "MMIO",
            Exit::GuestFault { .. } => "faults",
            Exit::SysRegRead { .. } | Exit::SysRegWrite { .. } => "sysreg",
            Exit::Unknown { .. } => "unknown",
            _ => "calls and WFx",
        }))
    });
}

/// ISS of a data abort: ISV[24] SAS[23:22] SSE[21] SRT[20:16] SF[15]
/// FnV[10] S1PTW[7] WnR[6].
fn data_abort(esr: u64, ipa: u64, exit: Exit) -> Result<(), TestCaseError> {
    let usable = bit(esr, 24) && !bit(esr, 10) && !bit(esr, 7);
    let decodable = !bit(esr, 24) && !bit(esr, 10) && !bit(esr, 7);
    check(
        esr::dabt_has_syndrome(esr) == usable && esr::dabt_needs_decode(esr) == decodable,
        || "syndrome predicates disagree with ISV/FnV/S1PTW".into(),
    )?;
    let (sas, srt) = (field(esr, 22, 2), field(esr, 16, 5) as u8);
    match exit {
        Exit::MmioRead {
            addr,
            width,
            reg,
            sign_extend,
            reg_is_64,
        } => check(
            usable
                && !bit(esr, 6)
                && addr == ipa
                && width.bytes() == 1 << sas
                && reg == srt
                && sign_extend == bit(esr, 21)
                && reg_is_64 == bit(esr, 15),
            || format!("{exit:?}"),
        ),
        Exit::MmioWrite { addr, width, reg } => check(
            usable && bit(esr, 6) && addr == ipa && width.bytes() == 1 << sas && reg == srt,
            || format!("{exit:?}"),
        ),
        Exit::GuestFault { addr } => check(!usable && addr == ipa, || format!("{exit:?}")),
        _ => check(false, || format!("data abort gave {exit:?}")),
    }
}

/// ISS of an MSR/MRS trap: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10]
/// Rt[9:5] CRm[4:1] Direction[0] (1 = read).
fn sysreg_trap(esr: u64, exit: Exit) -> Result<(), TestCaseError> {
    let fields = (
        field(esr, 20, 2) as u32,
        field(esr, 14, 3) as u32,
        field(esr, 10, 4) as u32,
        field(esr, 1, 4) as u32,
        field(esr, 17, 3) as u32,
    );
    let rt = field(esr, 5, 5) as u8;
    let (reg_enc, reg, read) = match exit {
        Exit::SysRegRead { sysreg, reg } => (sysreg, reg, true),
        Exit::SysRegWrite { sysreg, reg } => (sysreg, reg, false),
        _ => return check(false, || format!("MSR/MRS trap gave {exit:?}")),
    };
    check(
        sysreg::decode(reg_enc) == fields && reg == rt && read == bit(esr, 0),
        || format!("{exit:?} for fields {fields:?}"),
    )
}
