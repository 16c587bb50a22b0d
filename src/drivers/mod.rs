//! Drivers for the board's own devices the hypervisor uses.

#[cfg(target_arch = "aarch64")]
pub mod pl011;
#[cfg(target_arch = "x86_64")]
pub mod uart16550;
