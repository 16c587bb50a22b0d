//! Per-core basics: identity, halting, and the per-core data pointer.

use crate::config::SYSTEM;
use core::sync::atomic::{AtomicPtr, Ordering};
use tessera_config::MAX_CPUS;

/// Stops this core for good (interrupts off, so HLT never returns).
pub fn halt() -> ! {
    loop {
        // SAFETY: CLI and HLT only stop this core.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// This core's local APIC id, from CPUID (leaf 1, EBX[31:24]).
pub fn apic_id() -> u32 {
    let r = core::arch::x86_64::__cpuid(1);
    r.ebx >> 24
}

/// Index (in the board description) of the calling CPU, or `usize::MAX`.
pub fn index() -> usize {
    let id = u64::from(apic_id());
    SYSTEM
        .board
        .cpu_mpidrs
        .iter()
        .position(|&a| a == id)
        .unwrap_or(usize::MAX)
}

static LOCAL: [AtomicPtr<()>; MAX_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Sets this core's per-core data pointer.
pub fn set_local(cpu: usize, ptr: *const ()) {
    if let Some(slot) = LOCAL.get(cpu) {
        slot.store(ptr as *mut (), Ordering::Release);
    }
}

/// The per-core data pointer of CPU `cpu` (null before it is set).
pub fn local(cpu: usize) -> *const () {
    LOCAL
        .get(cpu)
        .map_or(core::ptr::null(), |s| s.load(Ordering::Acquire))
}
