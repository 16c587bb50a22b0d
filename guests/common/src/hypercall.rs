//! Tessera hypercalls: SMCCC vendor-specific hypervisor service range.

use crate::smccc::{self, SmcccResult};

/// NULL: returns x0 = 0. Used to measure the bare trap round trip.
pub const NULL: u64 = tessera_abi::tessera::NULL as u64;
/// VM_INFO: x0 = 0, x1 = vm id, x2 = vCPU count, x3 = RAM size in bytes,
/// x4 = how many times the VM has been reset (PSCI SYSTEM_RESET) so far.
pub const VM_INFO: u64 = tessera_abi::tessera::VM_INFO as u64;
/// FAULT_INJECT (hypervisor test builds only): x1 says what breaks.
pub const FAULT_INJECT: u64 = tessera_abi::tessera::FAULT_INJECT as u64;
pub use tessera_abi::tessera::fault_inject;

/// What VM_INFO reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmInfo {
    /// The VM's id.
    pub id: u64,
    /// Number of vCPUs.
    pub vcpus: u64,
    /// Size in bytes of the RAM region holding the entry point (at 0x4000_0000).
    pub ram_size: u64,
    /// Resets of this VM so far: 0 on its first boot.
    pub resets: u64,
}

/// Issues a Tessera hypercall through `hvc #0`.
pub fn call(fid: u64, a1: u64, a2: u64, a3: u64) -> SmcccResult {
    // SAFETY: Tessera's vendor hypercalls only report information; an
    // unknown id returns NOT_SUPPORTED.
    unsafe { smccc::hvc(fid, a1, a2, a3) }
}

/// NULL hypercall; returns x0.
pub fn null() -> u64 {
    call(NULL, 0, 0, 0).x0
}

/// VM_INFO hypercall; the raw x0 status if it is not 0.
pub fn vm_info() -> Result<VmInfo, u64> {
    let r = call(VM_INFO, 0, 0, 0);
    if r.x0 == 0 {
        Ok(VmInfo {
            id: r.x1,
            vcpus: r.x2,
            ram_size: r.x3,
            resets: r.x4,
        })
    } else {
        Err(r.x0)
    }
}
