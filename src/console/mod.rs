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

/// The `log` crate's records, printed as hypervisor lines.
#[cfg(target_os = "none")]
struct Logger;

#[cfg(target_os = "none")]
impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        print_hyp(format_args!("{}: {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

/// Routes the `log` crate to the console (level Info and above); the
/// console's `init` calls it once its UART works.
#[cfg(target_os = "none")]
fn install_logger() {
    static LOGGER: Logger = Logger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
