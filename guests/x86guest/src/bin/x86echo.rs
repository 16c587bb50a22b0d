//! Tessera's x86 console-input guest: says it is ready, reads one line
//! from its COM1 (polling LSR.DR, as a polled 16550 driver does), prints
//! what it got and powers off. Two of them in one system show that typed
//! input reaches only the VM that has it, and that Ctrl-\ moves it.
#![no_std]
#![no_main]

#[path = "../rt.rs"]
#[macro_use]
mod rt;

use rt::*;
use tessera_abi::psci;

/// LSR: data ready.
const LSR_DR: u8 = 1;

/// The next byte received on COM1.
fn getc() -> u8 {
    while inb(LSR) & LSR_DR == 0 {
        core::hint::spin_loop();
    }
    inb(COM1)
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    println!("x86echo: ready");
    let mut line = [0u8; 64];
    let mut n = 0;
    loop {
        match getc() {
            b'\r' | b'\n' => break,
            b if n < line.len() => {
                line[n] = b;
                n += 1;
            }
            _ => {}
        }
    }
    println!(
        "x86echo: got '{}'",
        core::str::from_utf8(&line[..n]).unwrap_or("<not UTF-8>")
    );
    vmcall(psci::SYSTEM_OFF);
    loop {
        core::hint::spin_loop();
    }
}
