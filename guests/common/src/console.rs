//! Polled PL011 console at guest-physical 0x0900_0000.
//!
//! There is no lock: only one vCPU should print at a time (the test guests
//! print from vCPU 0 only, apart from fatal-error reports).

use core::fmt::{self, Write};

/// Guest-physical base address of the PL011 UART.
pub const PL011_BASE: usize = 0x0900_0000;
/// Data register offset.
pub const UARTDR: usize = 0x00;
/// Flag register offset.
pub const UARTFR: usize = 0x18;
/// Control register offset.
pub const UARTCR: usize = 0x30;
/// Interrupt mask set/clear register offset.
pub const UARTIMSC: usize = 0x38;
/// FR: transmit FIFO full.
pub const FR_TXFF: u32 = 1 << 5;
/// FR: receive FIFO empty.
pub const FR_RXFE: u32 = 1 << 4;

/// Polls before a character is dropped, so a stuck TXFF cannot hang a guest.
const TX_SPIN_LIMIT: u32 = 1_000_000;

/// Writes one byte, waiting (bounded) while the transmit FIFO is full.
pub fn putc(byte: u8) {
    let fr = (PL011_BASE + UARTFR) as *const u32;
    let dr = (PL011_BASE + UARTDR) as *mut u32;
    for _ in 0..TX_SPIN_LIMIT {
        // SAFETY: FR is an aligned 32-bit device register of the guest's UART.
        if unsafe { fr.read_volatile() } & FR_TXFF == 0 {
            // SAFETY: DR is an aligned 32-bit device register of the guest's UART.
            unsafe { dr.write_volatile(u32::from(byte)) };
            return;
        }
    }
}

/// Writes a string byte by byte (only aligned 32-bit device accesses).
pub fn puts(s: &str) {
    s.bytes().for_each(putc);
}

/// `core::fmt` sink for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        puts(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // Console::write_str never fails.
    let _ = Console.write_fmt(args);
}

/// Prints to the PL011 console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints to the PL011 console, ending the line with `\n`.
#[macro_export]
macro_rules! println {
    () => { $crate::console::puts("\n") };
    ($($arg:tt)*) => {{
        $crate::console::_print(format_args!($($arg)*));
        $crate::console::puts("\n");
    }};
}
