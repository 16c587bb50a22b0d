//! Console input check: reads what is typed on the emulated PL011
//! (0x0900_0000) by polling FR.RXFE, and prints each line back.
//!
//! Turns the FIFOs on (LCR_H.FEN, as a real driver does), prints
//! `echo: ready`, then, like a shell, a prompt `echo> ` without a newline,
//! echoes each byte typed and, when a line ends (CR or LF), prints
//! `echo: got <line>`; the line `off` powers the VM off. Without input for
//! a minute it prints `echo: timeout` and powers off, so a broken input
//! path ends the run instead of hanging it.

#![no_std]
#![no_main]

use tessera_guest::console::{FR_RXFE, PL011_BASE, UARTDR, UARTFR};
use tessera_guest::{cpu, print, println, psci, time};

tessera_guest::entry!(main);

/// LCR_H offset and its FIFO-enable and 8-bit word-length bits.
const UARTLCR_H: usize = 0x2c;
const LCR_H_FEN_WLEN8: u32 = 1 << 4 | 3 << 5;
/// Longest line kept; the rest of a longer line is dropped.
const LINE_MAX: usize = 80;
/// How long to wait for the next byte.
const IDLE_TIMEOUT_MS: u64 = 60_000;

fn main() -> ! {
    cpu::mask_all_exceptions();
    write_reg(UARTLCR_H, LCR_H_FEN_WLEN8);
    println!("echo: ready");
    let mut line = [0u8; LINE_MAX];
    let mut len = 0;
    print!("echo> ");
    loop {
        let Some(byte) = next_byte() else {
            println!("echo: timeout");
            psci::system_off()
        };
        match byte {
            b'\r' | b'\n' => {
                println!();
                let text = core::str::from_utf8(&line[..len]).unwrap_or("<not utf-8>");
                println!("echo: got {}", text);
                if text == "off" {
                    psci::system_off()
                }
                len = 0;
                print!("echo> ");
            }
            _ if len < LINE_MAX => {
                print!("{}", byte as char);
                line[len] = byte;
                len += 1;
            }
            _ => {}
        }
    }
}

/// The next received byte, or `None` after [`IDLE_TIMEOUT_MS`].
fn next_byte() -> Option<u8> {
    time::wait_until(IDLE_TIMEOUT_MS, || read_reg(UARTFR) & FR_RXFE == 0)
        .then(|| read_reg(UARTDR) as u8)
}

fn read_reg(offset: usize) -> u32 {
    // SAFETY: an aligned 32-bit register of the guest's own UART.
    unsafe { ((PL011_BASE + offset) as *const u32).read_volatile() }
}

fn write_reg(offset: usize, value: u32) {
    // SAFETY: an aligned 32-bit register of the guest's own UART.
    unsafe { ((PL011_BASE + offset) as *mut u32).write_volatile(value) }
}
