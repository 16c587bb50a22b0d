//! What the arch-neutral core calls on this back-end (see `arch/mod.rs` for
//! the list every back-end provides).

use super::{cache, cpu, gic, semihosting, sysreg, vgic_hw};
use crate::config::SYSTEM;
use crate::devices::vgic::gicv3::SgiRegisters;
use crate::devices::vgic::{Vgic, VgicHw};
use crate::devices::SysRegBus;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use alloc::boxed::Box;

pub use super::stage2::{
    MapError, MemKind, Stage2 as GuestPageTable, Table, TableAllocator, ENTRIES as TABLE_ENTRIES,
};

/// Index (in the board description) of the calling physical CPU.
pub fn this_cpu() -> usize {
    let mpidr = cpu::mpidr();
    SYSTEM
        .board
        .cpu_mpidrs
        .iter()
        .position(|&m| m == mpidr)
        .unwrap_or(usize::MAX)
}

/// Makes physical CPU `cpu` look at its vCPU's state (wakes it from WFI,
/// or takes it out of its guest).
pub fn kick_cpu(cpu: usize) {
    gic::kick(cpu);
}

/// Waits until this core is kicked, and consumes the kick. The core's vCPU
/// is not running: its virtual CPU interface and EL1 timers are switched
/// off first, or an armed underflow maintenance interrupt or a timer it
/// left running would keep the core busy.
pub fn wait_for_kick() {
    vgic_hw::disable_cpu_interface();
    cpu::stop_guest_timers();
    cpu::wait_for_interrupt();
    drain_kicks();
}

/// Consumes pending kicks without waiting (after a kick took the core out
/// of its guest).
pub fn drain_kicks() {
    while let Some((intid, ack)) = gic::acknowledge() {
        if Some(intid) == SYSTEM.board.console_irq {
            crate::console::on_uart_interrupt();
        }
        gic::end_of_interrupt(ack);
    }
}

/// Starts this core's vCPU at guest-physical `entry` with first argument
/// `arg` and virtual counter offset `cntvoff`, resetting the hypervisor
/// stack to `stack_top` and the vCPU's interrupt interface.
pub fn enter_vcpu(stack_top: u64, entry: u64, arg: u64, cntvoff: u64) -> ! {
    vgic_hw::reset_cpu_interface();
    cpu::set_counter_offset(cntvoff);
    cpu::enter_vcpu(stack_top, entry, arg)
}

/// The system counter now (what a VM's virtual counter offset is taken
/// from).
pub fn counter_now() -> u64 {
    CNTPCT_EL0.get()
}

/// The hardware side every VM's virtual GIC uses.
pub fn vgic_backend() -> &'static dyn VgicHw {
    &vgic_hw::PHYSICAL_GIC
}

/// Adds the trapped SGI generation registers of `vgic` (ICC_SGI1R_EL1,
/// ICC_ASGI1R_EL1, ICC_SGI0R_EL1: contiguous encodings).
pub fn add_vgic_sysreg_devices(bus: &mut SysRegBus, vgic: &'static Vgic) {
    bus.add(
        sysreg::ICC_SGI1R_EL1,
        sysreg::ICC_SGI0R_EL1,
        Box::new(SgiRegisters::new(vgic, sysreg::ICC_SGI1R_EL1)),
    );
}

/// Zeroes `[hpa, hpa + size)` of a VM's RAM (page-aligned) as fast as the
/// CPU allows.
///
/// # Safety
/// The range must be RAM of a VM none of whose vCPUs runs.
pub unsafe fn scrub_guest_memory(hpa: u64, size: u64) {
    // SAFETY: upheld by the caller.
    unsafe { cache::zero(hpa, size) }
}

/// Makes `[hpa, hpa + size)` as written by the hypervisor visible to a
/// guest that runs with its caches off, and drops stale instructions.
///
/// # Safety
/// The range must be RAM the EL2 map covers.
pub unsafe fn make_coherent_for_guest(hpa: u64, size: u64) {
    // SAFETY: upheld by the caller.
    unsafe { cache::clean_invalidate_to_poc(hpa, size) };
}

/// A doorbell with a spare physical SPI: that SPI set pending at the
/// distributor (its VM's core forwards it). Without one, the neutral
/// virtual GIC raises the doorbell's SPI.
#[inline(always)]
pub fn raise_doorbell(_vm_id: u16, _irq: u32, line: u32) -> bool {
    if line == 0 {
        return false;
    }
    super::gic::set_spi_pending(line);
    true
}

/// Adds the system registers every VM of this architecture sees emulated.
pub fn add_arch_sysreg_devices(bus: &mut SysRegBus) {
    super::id_regs::add_arch_sysreg_devices(bus);
}

/// Ends the run: power-off if `success` (PSCI SYSTEM_OFF, or the BCM2711
/// watchdog on a Raspberry Pi: `platform::power_off`), else (on emulator
/// boards) a semihosting exit with status 1, so the emulator's exit status
/// says how the run ended.
pub fn system_off(success: bool) -> ! {
    if !success {
        fail_stop(1);
    }
    crate::platform::power_off();
    cpu::halt()
}

/// Stops the machine after a fatal error: on emulator boards the emulator
/// exits with `status`; elsewhere the core halts.
pub fn fail_stop(status: u64) -> ! {
    if SYSTEM.board.semihosting_exit {
        semihosting::exit(status);
    }
    cpu::halt()
}

/// Frequency of the system counter in Hz.
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Invalidates every stage-1 and stage-2 TLB entry of the VM whose VMID
/// this core runs (VTTBR_EL2), on every core of the inner-shareable domain:
/// after a reset, nothing the guest's earlier run cached may translate.
pub fn flush_guest_tlb() {
    // SAFETY: TLB maintenance for the current VMID only; no memory changes.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb") };
}
