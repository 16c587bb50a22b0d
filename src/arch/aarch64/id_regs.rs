//! Emulated system registers every AArch64 VM gets: the feature-ID
//! registers (trapped by HCR_EL2.TID3), read from the hardware and passed
//! through the whitelist of [`super::id_fields`], plus the other trapped
//! registers and instructions of [`super::guest_sysregs`].

use super::guest_sysregs;
use super::id_fields::{self, VmFeatures};
use super::sysreg;
use crate::devices::{AccessError, Accessor, SysRegBus, SysRegDevice};
use alloc::boxed::Box;

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

/// Encodings in the TID3 group (CRm 1..=7, op2 0..=7, contiguous).
const GROUP_SIZE: usize = (sysreg::ID_GROUP3_LAST - sysreg::ID_GROUP3_FIRST + 1) as usize;

/// The feature-ID registers of one VM. Read-only: writes are refused. The
/// values are computed once, on the VM's first ID-register trap, so every
/// vCPU of the VM sees the same registers and a read costs a table look-up.
struct IdRegisters {
    values: spin::Once<[u64; GROUP_SIZE]>,
}

/// Every virtual value of the group for the trapping VM.
fn compute_all() -> [u64; GROUP_SIZE] {
    let vm = guest_sysregs::trapping_vm();
    let features = VmFeatures {
        pmu: vm.config.pmu,
        gicv3: !super::gic::is_v2(),
    };
    core::array::from_fn(|i| {
        let sysreg = sysreg::ID_GROUP3_FIRST + i as u32;
        let hw = read_id_reg!(sysreg;
            1: [0, 1, 2, 3, 4, 5, 6, 7], 2: [0, 1, 2, 3, 4, 5, 6, 7], 3: [0, 1, 2, 3, 4, 5, 6, 7],
            4: [0, 1, 2, 3, 4, 5, 6, 7], 5: [0, 1, 2, 3, 4, 5, 6, 7], 6: [0, 1, 2, 3, 4, 5, 6, 7],
            7: [0, 1, 2, 3, 4, 5, 6, 7]);
        id_fields::virtual_id_value(sysreg, hw, features)
    })
}

impl SysRegDevice for IdRegisters {
    fn read(&self, _: Accessor, sysreg: u32) -> Result<u64, AccessError> {
        let i = sysreg.wrapping_sub(sysreg::ID_GROUP3_FIRST) as usize;
        self.values
            .call_once(compute_all)
            .get(i)
            .copied()
            .ok_or(AccessError::Invalid)
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
        Box::new(IdRegisters {
            values: spin::Once::new(),
        }),
    );
    guest_sysregs::add(bus);
}
