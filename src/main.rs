//! The bare-metal hypervisor image. Everything lives in the library; this
//! file only supplies what a freestanding binary must: the panic handler.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod bare_metal {
    use core::sync::atomic::{AtomicBool, Ordering};

    static PANICKING: AtomicBool = AtomicBool::new(false);

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        if !PANICKING.swap(true, Ordering::AcqRel) {
            tessera::console::print_emergency(format_args!("PANIC: {info}"));
            tessera::arch::fail_stop(2);
        }
        tessera::arch::cpu::halt()
    }
}

/// On the host the image is not a program; `make build` builds it.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the Tessera image runs on bare metal only: use `make build` / `make run`");
    std::process::exit(1);
}
