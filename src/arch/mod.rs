//! Hardware edge. One back-end per architecture; the rest of the hypervisor
//! sees only [`crate::exit::Exit`] and the small interface each back-end
//! exports at this level:
//!
//! - guest memory: `GuestPageTable` (stage 2 / EPT: `new`, `map`, `root`)
//!   over `Table`s from a `TableAllocator`,
//!   `MemKind`, `MapError`; `scrub_guest_memory`, `make_coherent_for_guest`;
//! - cores: `this_cpu`, `kick_cpu`, `wait_for_kick`, `drain_kicks`,
//!   `enter_vcpu`, `counter_now`;
//! - per-arch emulation: `add_arch_sysreg_devices`, `vgic_backend`,
//!   `add_vgic_sysreg_devices`, `raise_doorbell`;
//! - the end: `system_off`, `fail_stop`.
//!
//! The back-end owns its trap entry and decodes traps into exits; the VM
//! power semantics, buses and devices it calls are arch-neutral.
//!
//! [`Arch`] and [`GuestMemory`] are that list as a contract the compiler
//! checks: each back-end implements them (`aarch64::contract`,
//! `x86_64::contract`) by delegating to its free functions, and
//! [`Current`] names the back-end this image is built for.

use crate::devices::vgic::{Vgic, VgicHw};
use crate::devices::SysRegBus;
use crate::mm::table as pt;

/// A guest-physical address space under construction (Arm stage 2, x86
/// EPT), built from the config before the VM runs.
pub trait GuestMemory: Sized {
    /// A new, empty address space.
    fn new(alloc: &mut impl pt::TableAllocator) -> Result<Self, pt::MapError>;
    /// Maps `[gpa, gpa + size)` to host `[hpa, hpa + size)`.
    fn map(
        &mut self,
        alloc: &mut impl pt::TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: pt::MemKind,
    ) -> Result<(), pt::MapError>;
    /// Physical address of the root table (VTTBR_EL2 / EPTP base).
    fn root(&self) -> u64;
}

/// What the arch-neutral core needs from a back-end.
pub trait Arch {
    /// The guest page-table format.
    type GuestPageTable: GuestMemory;
    /// Index (in the board description) of the calling physical CPU.
    fn this_cpu() -> usize;
    /// Makes physical CPU `cpu` look at its vCPU's state.
    fn kick_cpu(cpu: usize);
    /// Waits until this core is kicked, and consumes the kick.
    fn wait_for_kick();
    /// Consumes pending kicks without waiting.
    fn drain_kicks();
    /// Starts this core's vCPU at `entry` with first argument `arg` and
    /// virtual counter offset `cntvoff`, resetting the hypervisor stack to
    /// `stack_top`.
    fn enter_vcpu(stack_top: u64, entry: u64, arg: u64, cntvoff: u64) -> !;
    /// The counter a VM's virtual counter offset is taken from.
    fn counter_now() -> u64;
    /// The hardware side of every VM's virtual GIC.
    fn vgic_backend() -> &'static dyn VgicHw;
    /// Adds the system registers of `vgic` the guest reaches by trapping.
    fn add_vgic_sysreg_devices(bus: &mut SysRegBus, vgic: &'static Vgic);
    /// Zeroes `[hpa, hpa + size)` of a VM's RAM (page-aligned).
    ///
    /// # Safety
    /// The range must be RAM of a VM none of whose vCPUs runs.
    unsafe fn scrub_guest_memory(hpa: u64, size: u64);
    /// Makes `[hpa, hpa + size)` as written by the hypervisor visible to a
    /// guest.
    ///
    /// # Safety
    /// The range must be RAM the hypervisor maps (cache maintenance on
    /// anything else faults in the hypervisor).
    unsafe fn make_coherent_for_guest(hpa: u64, size: u64);
    /// Ticks per second of [`Arch::counter_now`].
    fn counter_frequency() -> u64;
    /// Drops every TLB entry of the VM this core runs (after its reset).
    fn flush_guest_tlb();
    /// Adds the system registers every VM of this architecture sees
    /// emulated.
    fn add_arch_sysreg_devices(bus: &mut SysRegBus);
    /// Raises inter-VM doorbell interrupt `irq` in VM `vm_id` where the
    /// back-end models the guest's interrupt controller itself (x86: vector
    /// `irq` in vCPU 0's local APIC, its core kicked) and returns true;
    /// false where the neutral virtual GIC does it (Arm: `irq` is an SPI),
    /// except that on Arm a doorbell with a spare physical SPI (`line`, 0
    /// for none) is raised by setting that SPI pending (true).
    fn raise_doorbell(vm_id: u16, irq: u32, line: u32) -> bool;
    /// Ends the run (success: every VM powered off).
    fn system_off(success: bool) -> !;
    /// Stops the machine after a fatal error, reporting `status` where the
    /// platform can.
    fn fail_stop(status: u64) -> !;
}

/// Implements [`Arch`] for `$backend` by delegating every item to the free
/// function of the same name in module `$iface`: the compiler then checks
/// the free functions the neutral core calls against the contract.
// Host builds (unit tests aside) compile no back-end, so no use of it.
#[allow(unused_macros)]
macro_rules! arch_contract {
    ($backend:ty, $iface:ident) => {
        impl $crate::arch::Arch for $backend {
            type GuestPageTable = $iface::GuestPageTable;
            fn this_cpu() -> usize {
                $iface::this_cpu()
            }
            fn kick_cpu(cpu: usize) {
                $iface::kick_cpu(cpu)
            }
            fn wait_for_kick() {
                $iface::wait_for_kick()
            }
            fn drain_kicks() {
                $iface::drain_kicks()
            }
            fn enter_vcpu(stack_top: u64, entry: u64, arg: u64, cntvoff: u64) -> ! {
                $iface::enter_vcpu(stack_top, entry, arg, cntvoff)
            }
            fn counter_now() -> u64 {
                $iface::counter_now()
            }
            fn vgic_backend() -> &'static dyn $crate::devices::vgic::VgicHw {
                $iface::vgic_backend()
            }
            fn add_vgic_sysreg_devices(
                bus: &mut $crate::devices::SysRegBus,
                vgic: &'static $crate::devices::vgic::Vgic,
            ) {
                $iface::add_vgic_sysreg_devices(bus, vgic)
            }
            unsafe fn scrub_guest_memory(hpa: u64, size: u64) {
                // SAFETY: the caller upholds the contract of the trait method.
                unsafe { $iface::scrub_guest_memory(hpa, size) }
            }
            unsafe fn make_coherent_for_guest(hpa: u64, size: u64) {
                // SAFETY: the caller upholds the contract of the trait method.
                unsafe { $iface::make_coherent_for_guest(hpa, size) }
            }
            fn counter_frequency() -> u64 {
                $iface::counter_frequency()
            }
            fn flush_guest_tlb() {
                $iface::flush_guest_tlb()
            }
            fn add_arch_sysreg_devices(bus: &mut $crate::devices::SysRegBus) {
                $iface::add_arch_sysreg_devices(bus)
            }
            fn raise_doorbell(vm_id: u16, irq: u32, line: u32) -> bool {
                $iface::raise_doorbell(vm_id, irq, line)
            }
            fn system_off(success: bool) -> ! {
                $iface::system_off(success)
            }
            fn fail_stop(status: u64) -> ! {
                $iface::fail_stop(status)
            }
        }
    };
}

#[cfg(any(target_arch = "aarch64", test))]
pub mod aarch64;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::interface::*;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::{cpu, semihosting};

/// The back-end this image is built for.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub type Current = aarch64::contract::Aarch64;

#[cfg(any(all(target_arch = "x86_64", target_os = "none"), test))]
pub mod x86_64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use x86_64::cpu;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use x86_64::interface::*;

/// The back-end this image is built for.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub type Current = x86_64::contract::X86_64;
