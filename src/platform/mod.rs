//! Drivers for the board's own devices the hypervisor uses.

#[cfg(target_arch = "aarch64")]
pub mod pl011;
#[cfg(target_arch = "x86_64")]
pub mod uart16550;

/// The hypervisor console's UART on this architecture.
#[cfg(target_arch = "aarch64")]
pub use pl011::Pl011 as ConsoleUart;
/// The hypervisor console's UART on this architecture.
#[cfg(target_arch = "x86_64")]
pub use uart16550::Uart16550 as ConsoleUart;
