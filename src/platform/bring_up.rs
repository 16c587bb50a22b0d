//! Starting the other cores and powering off, by what the firmware offers;
//! the Raspberry Pi's console set-up.

use super::firmware::{FirmwareBoot, StartMethod};
use super::{bcm2711, uart_divisor};
use crate::arch::aarch64::{cache, psci};
use crate::config::SYSTEM;
use crate::drivers::pl011::Pl011;

static FIRMWARE: spin::Once<FirmwareBoot> = spin::Once::new();

/// Records what the firmware's device tree says. Boot core, once, before
/// any other core is started.
pub fn record_firmware(fw: FirmwareBoot) {
    FIRMWARE.call_once(|| fw);
}

fn firmware() -> FirmwareBoot {
    FIRMWARE
        .get()
        .cloned()
        .unwrap_or_else(FirmwareBoot::without_device_tree)
}

/// Why a core could not be started.
#[derive(Debug)]
pub enum StartError {
    /// PSCI `CPU_ON` returned this error.
    Psci(i64),
    /// The release slot is not 8-byte aligned or lies in a VM's RAM.
    BadReleaseAddress(u64),
    /// The device tree names no method this hypervisor can use.
    NoMethod,
}

/// Starts core `cpu_index` (affinity `mpidr`) at physical `entry`, at EL2
/// with its MMU off, by the method the firmware's device tree gives it.
/// Returns the method's name for the boot log.
///
/// # Safety
/// `entry` must be code that can run on a freshly started core at EL2 with
/// the MMU off (the hypervisor's secondary entry point, which finds its
/// CPU index and stack from MPIDR_EL1 whichever way it was started).
pub unsafe fn start_secondary(
    cpu_index: usize,
    mpidr: u64,
    entry: u64,
) -> Result<StartMethod, StartError> {
    let method = firmware().start_method(mpidr);
    match method {
        StartMethod::Psci => {
            // SAFETY: upheld by the caller.
            unsafe { psci::cpu_on(mpidr, entry, cpu_index as u64) }.map_err(StartError::Psci)?
        }
        StartMethod::SpinTable { release_addr } => {
            let in_vm = SYSTEM.vms.iter().any(|vm| {
                vm.memory_regions
                    .iter()
                    .any(|r| release_addr >= r.hpa && release_addr - r.hpa < r.size)
            });
            if !release_addr.is_multiple_of(8) || in_vm {
                return Err(StartError::BadReleaseAddress(release_addr));
            }
            let slot = release_addr as *mut u64;
            // SAFETY: the firmware's device tree gives this slot to the
            // core, which spins reading it with its caches off; it is in
            // no VM's RAM (checked above) and mapped by the EL2 map (RAM or
            // the low device window).
            // The same slot, so also mapped for the cache maintenance.
            unsafe {
                core::ptr::write_volatile(slot, entry);
                cache::clean_invalidate_to_poc(release_addr, 8);
            }
            // SAFETY: barrier and event only.
            unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
        }
        StartMethod::Unknown => return Err(StartError::NoMethod),
    }
    Ok(method)
}

/// Powers the machine off: PSCI `SYSTEM_OFF` if the firmware has PSCI,
/// else the BCM2711 watchdog's halt on a board with `[bcm2711]`. Returns if
/// neither is there or the firmware refused; the caller halts the core.
pub fn power_off() {
    if firmware().psci {
        psci::system_off();
    } else if let Some(b) = SYSTEM.board.bcm2711 {
        bcm2711::halt(b.pm.base);
    }
}

/// On a BCM2711 board: puts the console PL011 on GPIO14/15 (alternate
/// function 0; the firmware gives those pins to the mini UART unless an
/// overlay says otherwise), takes it off the Bluetooth pins, and programs
/// its baud rate from the board's UART clock. Before the console is enabled. Nothing elsewhere: the
/// firmware's settings are kept.
pub fn prepare_console() {
    let Some(b) = SYSTEM.board.bcm2711 else {
        return;
    };
    // GPIO32/33 carry UART0 to the Bluetooth chip when it is muxed so
    // (ALT3); two pins on one UART's RXD is undefined, so they become
    // plain inputs: the hypervisor's console owns UART0.
    bcm2711::set_function(b.gpio.base, 32, bcm2711::INPUT);
    bcm2711::set_function(b.gpio.base, 33, bcm2711::INPUT);
    bcm2711::set_function(b.gpio.base, 14, bcm2711::ALT0);
    bcm2711::set_function(b.gpio.base, 15, bcm2711::ALT0);
    if let Some((ibrd, fbrd)) = uart_divisor::pl011_divisors(b.uart_clock_hz, b.baud) {
        // SAFETY: the board's console PL011, in the EL2 map's device
        // window.
        unsafe { Pl011::new(SYSTEM.board.console.base) }.set_divisors(ibrd, fbrd);
    }
}

/// What [`prepare_console`] set, for the boot log: GPIO14/15's functions.
pub fn console_pins() -> Option<(u32, u32)> {
    let b = SYSTEM.board.bcm2711?;
    Some((
        bcm2711::function(b.gpio.base, 14),
        bcm2711::function(b.gpio.base, 15),
    ))
}
