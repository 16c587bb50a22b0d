//! The AArch64 back-end as the [`Arch`] contract: each item delegates to
//! the free function the neutral core calls, so the compiler checks that
//! this back-end provides the whole interface with the agreed signatures.

use super::interface;
use super::stage2::Stage2;
use crate::arch::{Arch, GuestMemory};
use crate::devices::vgic::{Vgic, VgicHw};
use crate::devices::SysRegBus;
use crate::mm::table::{MapError, MemKind, TableAllocator};

/// The AArch64 EL2 back-end.
pub struct Aarch64;

impl GuestMemory for Stage2 {
    fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        Stage2::new(alloc)
    }
    fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        Stage2::map(self, alloc, gpa, hpa, size, kind)
    }
    fn root(&self) -> u64 {
        Stage2::root(self)
    }
}

impl Arch for Aarch64 {
    type GuestPageTable = interface::GuestPageTable;
    fn this_cpu() -> usize {
        interface::this_cpu()
    }
    fn kick_cpu(cpu: usize) {
        interface::kick_cpu(cpu)
    }
    fn wait_for_kick() {
        interface::wait_for_kick()
    }
    fn drain_kicks() {
        interface::drain_kicks()
    }
    fn enter_vcpu(stack_top: u64, entry: u64, arg: u64, cntvoff: u64) -> ! {
        interface::enter_vcpu(stack_top, entry, arg, cntvoff)
    }
    fn counter_now() -> u64 {
        interface::counter_now()
    }
    fn vgic_backend() -> &'static dyn VgicHw {
        interface::vgic_backend()
    }
    fn add_vgic_sysreg_devices(bus: &mut SysRegBus, vgic: &'static Vgic) {
        interface::add_vgic_sysreg_devices(bus, vgic)
    }
    unsafe fn scrub_guest_memory(hpa: u64, size: u64) {
        // SAFETY: the caller upholds the contract of the trait method.
        unsafe { interface::scrub_guest_memory(hpa, size) }
    }
    fn make_coherent_for_guest(hpa: u64, size: u64) {
        interface::make_coherent_for_guest(hpa, size)
    }
    fn add_arch_sysreg_devices(bus: &mut SysRegBus) {
        interface::add_arch_sysreg_devices(bus)
    }
    fn system_off(success: bool) -> ! {
        interface::system_off(success)
    }
    fn fail_stop(status: u64) -> ! {
        interface::fail_stop(status)
    }
}
