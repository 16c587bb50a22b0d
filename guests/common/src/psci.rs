//! PSCI 1.1 function ids, return codes and wrappers (conduit: HVC).

use crate::smccc::{self, SmcccResult};

use tessera_abi::psci as abi;

/// PSCI_VERSION.
pub const PSCI_VERSION: u64 = abi::VERSION as u64;
/// CPU_OFF.
pub const CPU_OFF: u64 = abi::CPU_OFF as u64;
/// CPU_ON (SMC64).
pub const CPU_ON: u64 = abi::CPU_ON_64 as u64;
/// AFFINITY_INFO (SMC64).
pub const AFFINITY_INFO: u64 = abi::AFFINITY_INFO_64 as u64;
/// SYSTEM_OFF.
pub const SYSTEM_OFF: u64 = abi::SYSTEM_OFF as u64;
/// SYSTEM_RESET.
pub const SYSTEM_RESET: u64 = abi::SYSTEM_RESET as u64;
/// PSCI_FEATURES.
pub const PSCI_FEATURES: u64 = abi::FEATURES as u64;

pub use abi::{
    AFFINITY_OFF, AFFINITY_ON, AFFINITY_ON_PENDING, ALREADY_ON, DENIED, INVALID_ADDRESS,
    INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING, SUCCESS,
};

/// A PSCI call through `hvc #0` that cannot affect memory safety.
fn call(fid: u64, a1: u64, a2: u64, a3: u64) -> SmcccResult {
    // SAFETY: callers pass only informational or power-off functions.
    unsafe { smccc::hvc(fid, a1, a2, a3) }
}

/// PSCI_VERSION: major in bits 31:16, minor in bits 15:0.
pub fn version() -> u64 {
    call(PSCI_VERSION, 0, 0, 0).x0
}

/// PSCI_VERSION through `smc #0` (Tessera traps SMC for PSCI too).
pub fn version_smc() -> u64 {
    // SAFETY: PSCI_VERSION only returns a number.
    unsafe { smccc::smc(PSCI_VERSION, 0, 0, 0).x0 }
}

/// PSCI_FEATURES for function id `fid`: 0 (or feature flags) if supported.
pub fn features(fid: u64) -> i64 {
    call(PSCI_FEATURES, fid, 0, 0).x0 as i64
}

/// AFFINITY_INFO for `mpidr` at affinity level 0.
pub fn affinity_info(mpidr: u64) -> i64 {
    call(AFFINITY_INFO, mpidr, 0, 0).x0 as i64
}

/// CPU_ON: start `mpidr` at `entry` with x0 = `context_id`.
///
/// # Safety
/// `entry` must be code that is correct to run on a fresh vCPU with the MMU
/// off, such as [`boot::entry_address`](crate::boot::entry_address).
pub unsafe fn cpu_on(mpidr: u64, entry: u64, context_id: u64) -> i64 {
    // SAFETY: upheld by the caller.
    unsafe { smccc::hvc(CPU_ON, mpidr, entry, context_id).x0 as i64 }
}

/// CPU_OFF: turns the calling vCPU off. Returns only on failure.
pub fn cpu_off() -> i64 {
    call(CPU_OFF, 0, 0, 0).x0 as i64
}

/// SYSTEM_OFF; parks the vCPU if the call returns.
pub fn system_off() -> ! {
    call(SYSTEM_OFF, 0, 0, 0);
    loop {
        crate::cpu::wfe();
    }
}

/// SYSTEM_RESET; parks the vCPU if the call returns.
pub fn system_reset() -> ! {
    call(SYSTEM_RESET, 0, 0, 0);
    loop {
        crate::cpu::wfe();
    }
}
