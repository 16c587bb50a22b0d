//! Exceptions taken at EL2 itself: always a hypervisor bug or the
//! hypervisor's own hardware error, always fatal. The vectors
//! (`vectors.rs`) switch to this core's emergency stack before anything
//! else, because the normal stack may be what faulted: an overflow into its
//! guard page would otherwise fault again on the first register save, for
//! ever. Here the report names what happened — a stack overflow (the fault
//! address or SP in a guard page), an SError of the hypervisor's own, any
//! other exception with its syndrome — and the machine stops.
//!
//! A test-only trigger (cargo feature `fault-injection`, never in a normal
//! build) lets a guest make the hypervisor overflow its stack, so the boot
//! tests can prove the path.

use super::boot;
use crate::config::MAX_CPUS;
use aarch64_cpu::registers::{Readable, ELR_EL2, ESR_EL2, FAR_EL2};
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU8;

/// Bytes of each core's emergency stack: room for the panic report's
/// formatting.
pub const EMERGENCY_STACK_SIZE: usize = 16 * 1024;

/// Per core: its emergency stack is in use (a second fault on it parks the
/// core instead of reusing the stack under the first report). Written by
/// the vectors only.
#[no_mangle]
static TESSERA_IN_EMERGENCY: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

#[repr(C, align(16))]
struct EmergencyStacks(UnsafeCell<[[u8; EMERGENCY_STACK_SIZE]; MAX_CPUS]>);

// SAFETY: no Rust code reads or writes the stacks; each core's vectors use
// their own slot only, once (TESSERA_IN_EMERGENCY).
unsafe impl Sync for EmergencyStacks {}

/// The emergency stacks, in .bss (read-write, never executable).
#[no_mangle]
static TESSERA_EMERGENCY_STACKS: EmergencyStacks =
    EmergencyStacks(UnsafeCell::new([[0; EMERGENCY_STACK_SIZE]; MAX_CPUS]));

/// Names of the vectors `vectors.rs` passes as `kind`.
const KINDS: [&str; 8] = [
    "synchronous (SP_EL0)",
    "IRQ (SP_EL0)",
    "FIQ (SP_EL0)",
    "SError (SP_EL0)",
    "synchronous",
    "IRQ",
    "FIQ",
    "SError",
];

/// Which stack a slot is.
struct Slot(usize);

impl core::fmt::Display for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("the boot core's stack"),
            n => write!(f, "CPU {}'s stack", n - 1),
        }
    }
}

/// The report, on the emergency stack of core `cpu`: `kind` names the
/// vector, `sp` is the stack pointer at the exception.
#[no_mangle]
extern "C" fn tessera_hyp_fault(kind: u64, sp: u64, cpu: u64) -> ! {
    let (esr, elr, far) = (ESR_EL2.get(), ELR_EL2.get(), FAR_EL2.get());
    let serror_kind = kind == 3 || kind == 7;
    if serror_kind {
        // Taken at EL2 outside the guest-exit window: no guest to charge
        // (`serror::outcome` with `SErrorOrigin::Hypervisor`: the machine
        // stops, whatever the syndrome).
        crate::console::print_emergency(format_args!(
            "hypervisor SError on CPU {} (esr {:#x} elr {:#x}): raised by the hypervisor's own work, not a guest's; stopping the machine",
            cpu, esr, elr
        ));
        crate::arch::fail_stop(3);
    }
    let layout = boot::image_layout();
    let overflowed = layout.guard_slot(far).or_else(|| layout.guard_slot(sp));
    if let (4, Some(slot)) = (kind, overflowed) {
        panic!(
            "hypervisor stack overflow on CPU {}: {} ran into its guard page (far {:#x} sp {:#x} elr {:#x} esr {:#x})",
            cpu,
            Slot(slot),
            far,
            sp,
            elr,
            esr
        );
    }
    let name = KINDS.get(kind as usize).copied().unwrap_or("unknown");
    panic!(
        "EL2 exception ({}) on CPU {}: esr {:#x} elr {:#x} far {:#x} sp {:#x}",
        name, cpu, esr, elr, far, sp
    );
}

/// The test-only trigger: a guest's `FAULT_INJECT` hypercall with x1 =
/// `STACK_OVERFLOW` makes this core recurse until its stack's guard page
/// faults. Anything else is not served (the caller answers
/// NOT_SUPPORTED).
#[cfg(feature = "fault-injection")]
pub fn inject(what: u64) {
    use tessera_abi::tessera::fault_inject;
    if what == fault_inject::STACK_OVERFLOW {
        crate::println!("fault injection: overflowing this core's stack");
        core::hint::black_box(recurse(0));
    }
}

/// Uses 1 KiB of stack per level, without end.
#[cfg(feature = "fault-injection")]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 128]);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    frame[1] + recurse(depth + 1)
}
