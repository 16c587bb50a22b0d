//! Starting secondary vCPUs with PSCI CPU_ON.
//!
//! Every vCPU enters at `_start`, which gives it its own stack; this module
//! then calls the function registered for it with the PSCI context id.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{boot, cpu, psci, MAX_CPUS};

/// Function a secondary vCPU runs: receives the CPU_ON context id.
pub type SecondaryFn = fn(context_id: u64) -> !;

/// Registered entry functions (as addresses); 0 means none. Written only by
/// the vCPU that calls [`start_cpu`] before it issues CPU_ON.
static ENTRIES: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Starts vCPU `cpu` (MPIDR Aff0 = `cpu`) running `entry(context_id)`.
///
/// Returns the PSCI CPU_ON status; `INVALID_PARAMETERS` without a call if
/// `cpu` is beyond what this runtime supports.
pub fn start_cpu(cpu: usize, entry: SecondaryFn, context_id: u64) -> i64 {
    if cpu >= MAX_CPUS {
        return psci::INVALID_PARAMETERS;
    }
    ENTRIES[cpu].store(entry as usize, Ordering::Relaxed);
    cpu::dmb();
    // SAFETY: `_start` is the runtime's entry, correct for any vCPU.
    unsafe { psci::cpu_on(cpu as u64, boot::entry_address(), context_id) }
}

/// Called by the boot code on every vCPU other than 0.
pub(crate) fn secondary_entry(cpu: usize, context_id: u64) -> ! {
    cpu::dmb();
    let raw = ENTRIES[cpu].load(Ordering::Relaxed);
    if raw != 0 {
        // SAFETY: `raw` was stored from a `SecondaryFn` by `start_cpu`.
        let entry: SecondaryFn = unsafe { core::mem::transmute::<usize, SecondaryFn>(raw) };
        entry(context_id)
    }
    // Started without a registered function: turn off again.
    psci::cpu_off();
    loop {
        cpu::wfe();
    }
}
