//! SMC Calling Convention helpers: function id in x0, arguments in x1..x3,
//! results in x0..x4. Registers x5..x17 are treated as clobbered.

use core::arch::asm;

/// SMCCC return value meaning "function not supported" (-1).
pub const NOT_SUPPORTED: u64 = u64::MAX;

/// Results x0..x4 of an SMCCC call (x4 is meaningful only for calls that
/// define it, such as Tessera's VM_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmcccResult {
    /// x0: status or first result.
    pub x0: u64,
    /// x1.
    pub x1: u64,
    /// x2.
    pub x2: u64,
    /// x3.
    pub x3: u64,
    /// x4.
    pub x4: u64,
}

macro_rules! smccc_call {
    ($insn:literal, $fid:expr, $a1:expr, $a2:expr, $a3:expr) => {{
        let (x0, x1, x2, x3, x4): (u64, u64, u64, u64, u64);
        asm!(
            $insn,
            inout("x0") $fid => x0,
            inout("x1") $a1 => x1,
            inout("x2") $a2 => x2,
            inout("x3") $a3 => x3,
            out("x4") x4, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
        SmcccResult { x0, x1, x2, x3, x4 }
    }};
}

/// Issues `hvc #0` with function id `fid` and arguments x1..x3.
///
/// # Safety
/// The callee may do anything the function id means: start a vCPU at an
/// arbitrary address, power the VM off, and so on. The caller must make sure
/// the requested service keeps the program sound.
pub unsafe fn hvc(fid: u64, a1: u64, a2: u64, a3: u64) -> SmcccResult {
    // SAFETY: upheld by the caller; the asm clobbers only registers it names.
    unsafe { smccc_call!("hvc #0", fid, a1, a2, a3) }
}

/// Issues `smc #0` with function id `fid` and arguments x1..x3.
///
/// # Safety
/// As for [`hvc`].
pub unsafe fn smc(fid: u64, a1: u64, a2: u64, a3: u64) -> SmcccResult {
    // SAFETY: upheld by the caller; the asm clobbers only registers it names.
    unsafe { smccc_call!("smc #0", fid, a1, a2, a3) }
}
