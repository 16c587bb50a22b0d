//! Runtime for Tessera's bare-metal AArch64 test guests.
//!
//! A guest built on this crate starts at `_start` (the first byte of its image,
//! guest-physical 0x4000_0000) at EL1h with the MMU off. The runtime gives
//! every vCPU its own stack, zeroes BSS once, installs an EL1 vector table and
//! then calls the function named with [`entry!`] on vCPU 0. Secondary vCPUs
//! are started with [`smp::start_cpu`].
//!
//! With the MMU off every data access is Device-nGnRnE: only aligned plain
//! loads and stores are safe, so cross-vCPU flags here are single-writer
//! words accessed with relaxed atomics (plain `ldr`/`str`) plus `dmb`.

#![no_std]

pub mod boot;
pub mod console;
pub mod cpu;
pub mod exception;
pub mod gic;
pub mod hypercall;
pub mod psci;
pub mod smccc;
pub mod smp;
pub mod time;

use core::panic::PanicInfo;

/// Highest number of vCPUs the runtime has stacks and per-vCPU state for.
pub const MAX_CPUS: usize = 4;

/// Guest-physical address where the image is loaded and RAM begins.
pub const RAM_BASE: u64 = 0x4000_0000;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // One line, so harnesses can match it: `PANIC file:line: message`.
    match info.location() {
        Some(loc) => println!("PANIC {}:{}: {}", loc.file(), loc.line(), info.message()),
        None => println!("PANIC {}", info.message()),
    }
    psci::system_off()
}
