//! What the arch-neutral core calls on this back-end (see `arch/mod.rs` for
//! the list every back-end provides).

use super::cpu;
use crate::devices::vgic::{Vgic, VgicHw};
use crate::devices::SysRegBus;

pub use super::ept::Ept as GuestPageTable;
pub use crate::mm::table::{MapError, MemKind, Table, TableAllocator, ENTRIES as TABLE_ENTRIES};

/// Index (in the board description) of the calling physical CPU.
pub fn this_cpu() -> usize {
    cpu::index()
}

/// Makes physical CPU `cpu` look at its vCPU's state: an IPI that makes
/// it leave its guest (`smp::kick`). A core in the hypervisor sees the
/// state on its own (it loops on it), so the IPI only costs it one extra
/// exit at its next entry.
pub fn kick_cpu(cpu: usize) {
    if cpu != cpu::index() {
        super::smp::kick(cpu);
    }
}

/// Waits for the state the caller loops on: one pause (a core waiting in
/// the hypervisor spins; it does not sleep on the kick IPI, which stays
/// pending until its next VM entry).
pub fn wait_for_kick() {
    core::hint::spin_loop();
}

/// Raises inter-VM doorbell vector `irq` in vCPU 0 of VM `vm_id` through
/// its local APIC (see `vmexit::raise_doorbell`); always handled here.
pub fn raise_doorbell(vm_id: u16, irq: u32, _line: u32) -> bool {
    super::vmexit::raise_doorbell(vm_id, irq);
    true
}

/// Nothing to consume: a kick that arrived in the hypervisor is taken as
/// an external-interrupt exit right after the next entry.
pub fn drain_kicks() {}

/// Starts this core's vCPU at guest-physical `entry` with RDI = `arg`,
/// resetting the hypervisor stack to `stack_top`. x86 guests read the TSC
/// unoffset for now (`cntvoff` is the Arm virtual counter's offset).
pub fn enter_vcpu(stack_top: u64, entry: u64, arg: u64, _cntvoff: u64) -> ! {
    super::vmexit::enter(stack_top, entry, arg)
}

/// The time-stamp counter.
pub fn counter_now() -> u64 {
    // SAFETY: RDTSC only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// x86 VMs have no virtual GIC: the neutral VM code still builds one per
/// VM (it is not reachable by an x86 guest: no MMIO window, no list
/// registers), so its hardware side does nothing.
pub fn vgic_backend() -> &'static dyn VgicHw {
    &NoGic
}

/// No GIC system registers on x86.
pub fn add_vgic_sysreg_devices(_bus: &mut SysRegBus, _vgic: &'static Vgic) {}

/// The do-nothing GIC hardware side of x86 VMs.
struct NoGic;

impl VgicHw for NoGic {
    fn is_this_cpu(&self, phys_cpu: usize) -> bool {
        phys_cpu == cpu::index()
    }
    fn deliver_local(&self, _vgic: &Vgic, _vcpu: usize) {}
    fn kick(&self, _phys_cpu: usize) {}
    fn set_physical_enabled(&self, _intid: u32, _enabled: bool) {}
    fn route_physical(&self, _intid: u32, _phys_cpu: usize) {}
    fn set_physical_edge(&self, _intid: u32, _edge: bool) {}
    fn quiesce_physical(&self, _intid: u32) {}
}

/// Zeroes `[hpa, hpa + size)` of a VM's RAM.
///
/// # Safety
/// The range must be RAM of a VM none of whose vCPUs runs.
pub unsafe fn scrub_guest_memory(hpa: u64, size: u64) {
    // SAFETY: upheld by the caller; the hypervisor identity-maps all RAM.
    unsafe { core::ptr::write_bytes(hpa as *mut u8, 0, size as usize) }
}

/// Nothing to do: x86 caches are coherent with instruction fetch and DMA.
///
/// # Safety
/// None needed here; `unsafe` for the contract (Arm maintains the range).
pub unsafe fn make_coherent_for_guest(_hpa: u64, _size: u64) {}

/// TSC ticks per second: CPUID leaf 0x16's base frequency where the CPU
/// reports it, else a nominal 1 GHz (only the guest-log rate limiter uses
/// it, so an estimate is enough).
pub fn counter_frequency() -> u64 {
    raw_cpuid::CpuId::new()
        .get_processor_frequency_info()
        .map(|f| u64::from(f.processor_base_frequency()) * 1_000_000)
        .filter(|&hz| hz != 0)
        .unwrap_or(1_000_000_000)
}

/// Nothing more to do: every vCPU (re)start already drops its VM's EPT and
/// VPID translations (`vmx::reset_guest_state`).
pub fn flush_guest_tlb() {}

/// x86 VMs have no emulated system-register devices (CPUID and MSRs are
/// handled by the exit handler).
pub fn add_arch_sysreg_devices(_bus: &mut SysRegBus) {}

/// Bochs's shutdown port: writing "Shutdown" there ends the emulator.
const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;

/// Ends the run. On an emulator the run is over (the console says how it
/// ended); on hardware the core halts (ACPI power-off is not done yet).
pub fn system_off(_success: bool) -> ! {
    drain_console();
    for b in b"Shutdown" {
        // SAFETY: an unused port on PCs; Bochs ends the simulation.
        unsafe { x86::io::outb(BOCHS_SHUTDOWN_PORT, *b) };
    }
    cpu::halt()
}

/// Waits until the console UART has sent its last byte (LSR.TEMT), so
/// nothing is lost when the machine stops.
fn drain_console() {
    let lsr = crate::config::SYSTEM.board.console.base as u16 + 5;
    for _ in 0..100_000 {
        // SAFETY: the console's line status register; reading it has no
        // side effect.
        if unsafe { x86::io::inb(lsr) } & 1 << 6 != 0 {
            break;
        }
        core::hint::spin_loop();
    }
}

/// Stops the machine after a fatal error: as [`system_off`] (the console
/// line before it says what went wrong).
pub fn fail_stop(_status: u64) -> ! {
    system_off(false)
}
