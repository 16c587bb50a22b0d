//! Trapped system registers and instructions that are not feature IDs:
//!
//! - set/way cache maintenance (HCR_EL2.TSW): a VM cannot name a physical
//!   cache line, so a set/way operation becomes a clean+invalidate of the
//!   VM's own RAM by address to the point of coherency;
//! - ACTLR_EL1 (HCR_EL2.TACR): implementation-defined controls shared by a
//!   cluster, read as zero, writes ignored;
//! - the debug registers (MDCR_EL2.TDA/TDOSA/TDRA, CPTR_EL2.TTA for trace):
//!   read as zero, writes ignored, so a guest's breakpoints, watchpoints,
//!   OS lock and trace never reach the hardware (self-hosted debug is not
//!   offered; ID_AA64DFR0_EL1 shows plain v8.0 debug).
//!
//! Everything else that traps (PMU without the `pmu` grant, RAS error
//! records, LORegions, implementation-defined registers, MTE, SVE, SME...)
//! has no device, so it takes the unhandled path: an undefined-instruction
//! exception in the guest under the default `on_unhandled` policy.

use super::{cache, sysreg};
use crate::config::MemoryRegion;
use crate::devices::{AccessError, Accessor, SysRegBus, SysRegDevice};
use crate::vcpu::CpuLocal;
use crate::vm::Vm;
use alloc::boxed::Box;

/// The VM whose vCPU trapped on this core.
///
/// Hook: the system-register device interface does not yet pass the
/// trapping VM; once it does, devices take it from there instead.
pub fn trapping_vm() -> &'static Vm {
    // SAFETY: a core only runs a guest (and so only takes traps that reach a
    // device) after TPIDR_EL2 points at its leaked, never-freed CpuLocal.
    unsafe { (*(super::cpu::local() as *const CpuLocal)).vm }
}

/// Set/way operand bits naming the set and the way (Rt[31:4]); bits 3:1
/// are the cache level.
const SET_WAY_MASK: u64 = 0xffff_fff0;

/// Cleans and invalidates the data cache for every RAM region of a VM, by
/// address to the point of coherency: what a set/way walk over all caches
/// achieves, limited to memory the VM owns.
///
/// `regions` are a VM's configured RAM (`VmConfig::memory_regions`): the
/// build-time validation keeps them inside the board's RAM banks, which the
/// EL2 map covers, so every address maintained here is mapped.
pub fn set_way_to_clean_invalidate(regions: &'static [MemoryRegion]) {
    for r in regions {
        // SAFETY: a VM's configured RAM lies in the board's RAM banks
        // (build-time validation), all of which the EL2 map covers.
        unsafe { cache::clean_invalidate_to_poc(r.hpa, r.size) };
    }
}

/// DC ISW / CSW / CISW.
struct SetWay;

impl SysRegDevice for SetWay {
    fn read(&self, _: Accessor, _: u32) -> Result<u64, AccessError> {
        Err(AccessError::Invalid)
    }
    fn write(&self, _: Accessor, _: u32, operand: u64) -> Result<(), AccessError> {
        // A full walk issues one operation per set, way and level; the
        // operation on set 0, way 0 of each level does the whole job, so a
        // walk costs one flush of the VM's RAM per cache level, not one per
        // line. Invalidate-only (ISW) also cleans: dropping dirty lines of
        // memory the VM shares with nothing would only lose its own data.
        if operand & SET_WAY_MASK == 0 {
            set_way_to_clean_invalidate(trapping_vm().config.memory_regions);
        }
        Ok(())
    }
}

/// Reads as zero, ignores writes.
struct ReadAsZero;

impl SysRegDevice for ReadAsZero {
    fn read(&self, _: Accessor, _: u32) -> Result<u64, AccessError> {
        Ok(0)
    }
    fn write(&self, _: Accessor, _: u32, _: u64) -> Result<(), AccessError> {
        Ok(())
    }
}

/// Adds the devices of this module to a VM's system-register bus.
pub fn add(bus: &mut SysRegBus) {
    for op in [sysreg::DC_ISW, sysreg::DC_CSW, sysreg::DC_CISW] {
        bus.add(op, op, Box::new(SetWay));
    }
    bus.add(sysreg::ACTLR_EL1, sysreg::ACTLR_EL1, Box::new(ReadAsZero));
    bus.add(sysreg::DEBUG_FIRST, sysreg::DEBUG_LAST, Box::new(ReadAsZero));
}
