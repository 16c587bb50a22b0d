//! Hardware edge. One back-end per architecture; the rest of the hypervisor
//! sees only [`crate::exit::Exit`] and the small interface each back-end
//! exports at this level:
//!
//! - guest memory: `GuestPageTable` (stage 2 / EPT: `new`, `map`, `root`)
//!   over `Table`s from a `TableAllocator`,
//!   `MemKind`, `MapError`; `make_coherent_for_guest`;
//! - cores: `this_cpu`, `kick_cpu`, `wait_for_kick`, `drain_kicks`,
//!   `enter_vcpu`;
//! - per-arch emulation: `add_arch_sysreg_devices`;
//! - the end: `system_off`, `fail_stop`.
//!
//! The back-end owns its trap entry and decodes traps into exits; the VM
//! power semantics, buses and devices it calls are arch-neutral.

#[cfg(any(target_arch = "aarch64", test))]
pub mod aarch64;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::interface::*;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::{cpu, semihosting};
