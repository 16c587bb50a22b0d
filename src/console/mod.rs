//! The console: the hypervisor log and every VM's virtual UART share one
//! physical UART without slowing each other down.
//!
//! - Output: each VM's transmitted bytes go into its own buffer
//!   ([`mux::Ring`], 4 KiB); whichever core gets the terminal lock (a
//!   try-lock: others just append and leave) writes all buffers out through
//!   the tagging multiplexer ([`mux::Mux`]): `[tessera] `, `[<vm>] ` at the
//!   start of each line, partial lines at once. A VM whose buffer is full
//!   sees its UART's TXFF and waits on itself only.
//! - Input: bytes received by the physical UART go to the VM that has
//!   input ([`input::InputSwitch`]); Ctrl-\ moves input to the next VM.
//!
//! [`mux`] and [`input`] are pure and host-tested; `physical` is the
//! bare-metal half (buffers, UART, clock, routing).

pub mod input;
pub mod mux;

#[cfg(target_os = "none")]
mod monitor;

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod physical;
#[cfg(all(target_os = "none", target_arch = "aarch64"))]
pub use physical::*;

// x86: a line-tagged console with the same API (no input yet).
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod lines;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
pub use lines::*;
