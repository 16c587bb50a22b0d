//! The bare-metal hypervisor image. Everything lives in the library; this
//! file only supplies what a freestanding binary must: the panic handler.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use tessera::config::SYSTEM;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if !PANICKING.swap(true, Ordering::AcqRel) {
        tessera::console::print_emergency(format_args!("PANIC: {}", info));
        if SYSTEM.board.semihosting_exit {
            tessera::arch::semihosting::exit(2);
        }
    }
    tessera::arch::cpu::halt()
}
