//! Passthrough-device check: drives the board's second PL011 (`uart1`,
//! guest-physical 0x0904_0000, mapped straight through stage 2) directly.
//!
//! Enables the UART (CR = UARTEN | TXE), writes one line to it polling
//! FR.TXFF, and reports on the emulated console (0x0900_0000)
//! `TEST passthrough-uart-mapped: PASS` if no access aborted, or
//! `... FAIL abort esr=.. far=..`; then `RESULT: ...` and SYSTEM_OFF. The line
//! itself appears, untagged, on QEMU's second serial port.

#![no_std]
#![no_main]

use tessera_guest::console::{FR_TXFF, UARTCR, UARTDR, UARTFR};
use tessera_guest::exception::{guarded, probe_read32, probe_write32, Fault};
use tessera_guest::{cpu, println, psci, time};

tessera_guest::entry!(main);

/// Guest-physical (= host-physical) base of the passthrough PL011.
const UART1_BASE: u64 = 0x0904_0000;
/// The line written to the passthrough UART.
const LINE: &str = "hello from uartguest through passthrough uart1\n";
/// CR: UART enable.
const CR_UARTEN: u32 = 1 << 0;
/// CR: transmit enable.
const CR_TXE: u32 = 1 << 8;
/// FR: the UART is busy transmitting.
const FR_BUSY: u32 = 1 << 3;
/// PeriphID0..3 and PCellID0..3: one identification byte per word.
const UARTPERIPHID0: u64 = 0xFE0;
/// How long the transmit FIFO may stay full (or the UART busy).
const TX_TIMEOUT_MS: u64 = 1_000;

fn main() -> ! {
    cpu::mask_all_exceptions();
    let (pass, fail) = match drive_uart1() {
        Ok(()) => {
            println!("TEST passthrough-uart-mapped: PASS");
            (1, 0)
        }
        Err(Failure::Abort(f)) => {
            println!(
                "TEST passthrough-uart-mapped: FAIL abort esr={:#x} far={:#x} ec={:#x}",
                f.esr,
                f.far,
                f.ec()
            );
            (0, 1)
        }
        Err(Failure::Stuck(what, fr)) => {
            println!(
                "TEST passthrough-uart-mapped: FAIL {} for {} ms, FR={:#x}",
                what, TX_TIMEOUT_MS, fr
            );
            (0, 1)
        }
    };
    println!("RESULT: pass={} fail={}", pass, fail);
    psci::system_off()
}

/// Why writing to uart1 failed.
enum Failure {
    /// An access raised a synchronous exception.
    Abort(Fault),
    /// A wait timed out: what was awaited and the last FR value.
    Stuck(&'static str, u32),
}

/// Enables uart1 and writes [`LINE`] to it.
fn drive_uart1() -> Result<(), Failure> {
    // The first access tells whether the device is mapped at all; read the
    // identification registers first since reading them has no effect.
    let mut id = [0u32; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = read(UARTPERIPHID0 + 4 * i as u64)? & 0xff;
    }
    let periph = id[..4].iter().rev().fold(0, |acc, b| acc << 8 | b);
    let cell = id[4..].iter().rev().fold(0, |acc, b| acc << 8 | b);
    println!(
        "info: uart1 PeriphID={:#010x} PCellID={:#010x}",
        periph, cell
    );

    write(UARTCR as u64, CR_UARTEN | CR_TXE)?;
    for byte in LINE.bytes() {
        wait_fr_clear(FR_TXFF, "TXFF stayed set")?;
        write(UARTDR as u64, u32::from(byte))?;
    }
    // Let the line drain before the VM is powered off.
    wait_fr_clear(FR_BUSY, "BUSY stayed set")
}

/// Polls FR (bounded) until every bit of `mask` is clear.
fn wait_fr_clear(mask: u32, what: &'static str) -> Result<(), Failure> {
    let mut fr = read(UARTFR as u64)?;
    let mut aborted = None;
    let clear = time::wait_until(TX_TIMEOUT_MS, || {
        if aborted.is_some() {
            return true;
        }
        match read(UARTFR as u64) {
            Ok(v) => fr = v,
            Err(f) => aborted = Some(f),
        }
        fr & mask == 0
    });
    match aborted {
        Some(f) => Err(f),
        None if clear => Ok(()),
        None => Err(Failure::Stuck(what, fr)),
    }
}

/// One guarded 32-bit load from uart1 at `offset`.
fn read(offset: u64) -> Result<u32, Failure> {
    // SAFETY: an aligned read of a PL011 register; reading DR is never done
    // here, so nothing changes state, and an abort is captured by `guarded`.
    match guarded(|| unsafe { probe_read32(UART1_BASE + offset) }) {
        (v, None) => Ok(v),
        (_, Some(f)) => Err(Failure::Abort(f)),
    }
}

/// One guarded 32-bit store to uart1 at `offset`.
fn write(offset: u64, value: u32) -> Result<(), Failure> {
    // SAFETY: an aligned write of a PL011 register of the UART this VM owns;
    // an abort is captured by `guarded`.
    match guarded(|| unsafe { probe_write32(UART1_BASE + offset, value) }) {
        ((), None) => Ok(()),
        ((), Some(f)) => Err(Failure::Abort(f)),
    }
}
