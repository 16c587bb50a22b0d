//! Calls to the firmware's PSCI (SMC conduit: QEMU virt with EL2 and
//! Trusted Firmware both take SMC at EL2).

use super::smccc::psci;

fn smc(fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call; the firmware preserves x4-x17 and our memory.
    unsafe {
        core::arch::asm!("smc #0", inout("x0") fid as u64 => ret, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _, options(nostack));
    }
    ret as i64
}

/// Starts physical core `mpidr` at physical address `entry` with x0 = `context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), i64> {
    match smc(psci::CPU_ON_64, mpidr, entry, context) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Powers the machine off. Returns only if the firmware refused.
pub fn system_off() {
    smc(psci::SYSTEM_OFF, 0, 0, 0);
}
