//! Per-VM reset check (PSCI SYSTEM_RESET).
//!
//! First boot (VM_INFO reports 0 resets): writes a marker into RAM well above
//! the image, prints `RESET first boot` and calls SYSTEM_RESET. Boot after the
//! reset (1 reset): prints `RESET boot after reset 1`, checks that the marker
//! is gone because the hypervisor zeroes VM RAM on reset
//! (`TEST reset-clears-memory: PASS|FAIL <detail>`), then `RESULT: ...` and
//! SYSTEM_OFF. More resets than that: `TEST reset-count: FAIL resets=<n>`.

#![no_std]
#![no_main]

use tessera_guest::exception::{guarded, Fault};
use tessera_guest::hypercall::{self, VmInfo};
use tessera_guest::{boot, cpu, println, psci, smccc, RAM_BASE};

tessera_guest::entry!(main);

/// Where the marker goes: 16 MiB into RAM, far above the image and stacks.
const MARKER_OFFSET: u64 = 16 << 20;
/// Marker length in 64-bit words (512 bytes).
const MARKER_WORDS: u64 = 64;
/// Marker word `i` is `MARKER_PATTERN + i` ("RESETMK" then the index).
const MARKER_PATTERN: u64 = 0x5245_5345_544D_4B00;

fn main() -> ! {
    cpu::mask_all_exceptions();
    let info = vm_info();
    match info.resets {
        0 => first_boot(&info),
        1 => after_reset(&info),
        n => finish_fail("reset-count", format_args!("resets={}", n)),
    }
}

/// VM_INFO; a refused or trapping call ends the run with a FAIL line.
fn vm_info() -> VmInfo {
    match guarded(hypercall::vm_info) {
        (Ok(info), None) => info,
        (Err(status), None) => finish_fail("reset-count", format_args!("VM_INFO x0={:#x}", status)),
        (_, Some(fault)) => {
            report_fault("hvc VM_INFO", fault);
            finish_fail("reset-count", format_args!("VM_INFO raised an exception"))
        }
    }
}

/// First boot: plant the marker, then reset the VM.
fn first_boot(info: &VmInfo) -> ! {
    let marker = marker_base();
    let marker_end = marker + MARKER_WORDS * 8;
    if marker < boot::image_end() || marker_end > RAM_BASE + info.ram_size {
        finish_fail(
            "reset-clears-memory",
            format_args!(
                "marker {:#x}..{:#x} is not between the image end {:#x} and RAM end {:#x}",
                marker,
                marker_end,
                boot::image_end(),
                RAM_BASE + info.ram_size
            ),
        );
    }
    for i in 0..MARKER_WORDS {
        // SAFETY: the word is aligned, inside the VM's RAM (checked above)
        // and above everything the image uses.
        unsafe { word(i).write_volatile(MARKER_PATTERN + i) };
    }
    // A marker that never landed would make the later check meaningless.
    if let Some((i, v)) = (0..MARKER_WORDS)
        .map(|i| (i, read_word(i)))
        .find(|&(i, v)| v != MARKER_PATTERN + i)
    {
        finish_fail(
            "reset-clears-memory",
            format_args!("marker write did not stick: {:#x} = {:#x}", addr(i), v),
        );
    }
    println!("RESET first boot");
    // SAFETY: SYSTEM_RESET restarts the VM from its image; nothing here
    // relies on state surviving it.
    let (r, fault) = guarded(|| unsafe { smccc::hvc(psci::SYSTEM_RESET, 0, 0, 0) }.x0);
    if let Some(fault) = fault {
        report_fault("hvc SYSTEM_RESET", fault);
        finish_fail(
            "reset-count",
            format_args!("SYSTEM_RESET raised an exception"),
        );
    }
    println!("info: SYSTEM_RESET returned x0={}", r as i64);
    finish_fail("reset-count", format_args!("SYSTEM_RESET returned"))
}

/// Boot after one reset: the marker must have been wiped.
fn after_reset(info: &VmInfo) -> ! {
    println!("RESET boot after reset {}", info.resets);
    let marker_end = marker_base() + MARKER_WORDS * 8;
    if marker_end > RAM_BASE + info.ram_size {
        finish_fail(
            "reset-clears-memory",
            format_args!("RAM too small for the marker"),
        );
    }
    let words = || (0..MARKER_WORDS).map(|i| (i, read_word(i)));
    if let Some((i, v)) = words().find(|&(i, v)| v == MARKER_PATTERN + i) {
        println!(
            "TEST reset-clears-memory: FAIL marker survived the reset: {:#x} = {:#x}",
            addr(i),
            v
        );
        finish(0, 1);
    }
    if let Some((i, v)) = words().find(|&(_, v)| v != 0) {
        println!(
            "TEST reset-clears-memory: FAIL memory not zeroed: {:#x} = {:#x}",
            addr(i),
            v
        );
        finish(0, 1);
    }
    println!("TEST reset-clears-memory: PASS");
    finish(1, 0)
}

fn marker_base() -> u64 {
    RAM_BASE + MARKER_OFFSET
}

fn addr(i: u64) -> u64 {
    marker_base() + i * 8
}

fn word(i: u64) -> *mut u64 {
    addr(i) as *mut u64
}

fn read_word(i: u64) -> u64 {
    // SAFETY: callers check the marker lies inside the VM's RAM; the word is
    // aligned.
    unsafe { word(i).read_volatile() }
}

fn report_fault(what: &str, fault: Fault) {
    println!(
        "info: {} raised an exception: ec={:#x} esr={:#x} far={:#x}",
        what,
        fault.ec(),
        fault.esr,
        fault.far
    );
}

/// Prints one FAIL line for `name` and ends the run.
fn finish_fail(name: &str, detail: core::fmt::Arguments) -> ! {
    println!("TEST {}: FAIL {}", name, detail);
    finish(0, 1)
}

fn finish(pass: u32, fail: u32) -> ! {
    println!("RESULT: pass={} fail={}", pass, fail);
    psci::system_off()
}
