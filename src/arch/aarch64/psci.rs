//! Calls to the firmware's PSCI (SMC conduit: QEMU virt with EL2 and
//! Trusted Firmware both take SMC at EL2).

use super::smccc::psci;

/// An SMC Calling Convention call through the SMC conduit. Per the SMCCC
/// (since v1.1), the callee may clobber x0-x17 and preserves x18-x30 and
/// the stack pointers; everything it may change is declared so.
fn smc(fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: firmware services do not touch our memory; every register the
    // convention lets them change is marked clobbered.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") fid as u64 => ret,
            inout("x1") a1 => _,
            inout("x2") a2 => _,
            inout("x3") a3 => _,
            lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
            lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
            lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
            lateout("x16") _, lateout("x17") _,
            options(nostack),
        );
    }
    ret as i64
}

/// Starts physical core `mpidr` at physical address `entry` with x0 = `context`.
///
/// # Safety
/// `entry` must be code that can run on a freshly powered core at EL2 with
/// the MMU off (the hypervisor's secondary entry point).
pub unsafe fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), i64> {
    match smc(psci::CPU_ON_64, mpidr, entry, context) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Powers the machine off. Returns only if the firmware refused.
pub fn system_off() {
    smc(psci::SYSTEM_OFF, 0, 0, 0);
}
