//! Emulated system registers every AArch64 VM gets: the feature-ID
//! registers (trapped by HCR_EL2.TID3), read from the hardware and filtered
//! by [`sysreg::virtual_id_value`] so a VM sees only what it may use.

use super::sysreg;
use crate::devices::{AccessError, Accessor, SysRegBus, SysRegDevice};
use alloc::boxed::Box;

/// The feature-ID registers. Read-only: writes are refused.
struct IdRegisters;

macro_rules! read_id_reg {
    ($sysreg:expr; $($crm:literal: [$($op2:literal),*]),*) => {
        match sysreg::decode($sysreg) {
            $($((3, 0, 0, $crm, $op2) => {
                let v: u64;
                // SAFETY: reading a feature-ID register has no side effect.
                unsafe { core::arch::asm!(concat!("mrs {}, S3_0_C0_C", $crm, "_", $op2), out(reg) v) };
                v
            })*)*
            _ => 0,
        }
    };
}

impl SysRegDevice for IdRegisters {
    fn read(&self, _: Accessor, sysreg: u32) -> Result<u64, AccessError> {
        let hw = read_id_reg!(sysreg;
            1: [0, 1, 2, 3, 4, 5, 6, 7], 2: [0, 1, 2, 3, 4, 5, 6, 7], 3: [0, 1, 2, 3, 4, 5, 6, 7],
            4: [0, 1, 2, 3, 4, 5, 6, 7], 5: [0, 1, 2, 3, 4, 5, 6, 7], 6: [0, 1, 2, 3, 4, 5, 6, 7],
            7: [0, 1, 2, 3, 4, 5, 6, 7]);
        Ok(sysreg::virtual_id_value(sysreg, hw))
    }
    fn write(&self, _: Accessor, _: u32, _: u64) -> Result<(), AccessError> {
        Err(AccessError::Invalid)
    }
}

/// Adds the system registers every AArch64 VM gets emulated.
pub fn add_arch_sysreg_devices(bus: &mut SysRegBus) {
    bus.add(
        sysreg::ID_GROUP3_FIRST,
        sysreg::ID_GROUP3_LAST,
        Box::new(IdRegisters),
    );
}
