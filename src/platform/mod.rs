//! Board bring-up that depends on the firmware and the SoC rather than the
//! architecture: how the other cores are started (PSCI or a spin table,
//! as the firmware's device tree says), how the machine is powered off
//! (PSCI, or the BCM2711 watchdog on a Raspberry Pi 4, which has no PSCI
//! firmware), and the Pi's console pins and baud rate.
//!
//! `firmware` and the divisor arithmetic are pure and host-tested; the
//! register code is bare-metal AArch64 only.

pub mod firmware;
pub mod uart_divisor;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
pub mod bcm2711;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod bring_up;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
pub use bring_up::*;
