//! Tessera's x86 trap-cost benchmark guest. Bochs's time stamp counter
//! advances with every instruction it executes (guest and hypervisor
//! alike), so RDTSC deltas count instructions exactly: the same on every
//! run. For each operation: a loop of `REPS` round trips minus the same
//! loop with a NOP, divided by `REPS`, printed as
//! `BENCH <op> <net> instructions/round-trip`, then `BENCH-DONE` and
//! power off.
#![no_std]
#![no_main]

#[macro_use]
#[path = "../rt.rs"]
mod rt;

use core::arch::asm;
use core::arch::x86_64::_rdtsc;
use rt::*;
use tessera_abi::{psci, tessera};

/// Round trips per measurement.
const REPS: u64 = 1000;

/// Instructions for `REPS` runs of `op`.
fn measure(op: impl Fn()) -> u64 {
    // SAFETY: RDTSC only reads the counter (it does not exit).
    let start = unsafe { _rdtsc() };
    for _ in 0..REPS {
        op();
    }
    // SAFETY: as above.
    unsafe { _rdtsc() - start }
}

fn nop() {
    // SAFETY: does nothing.
    unsafe { asm!("nop", options(nomem, nostack)) };
}

fn report(name: &str, op: impl Fn()) {
    let base = measure(nop);
    let total = measure(op);
    let net = total.saturating_sub(base) / REPS;
    println!("BENCH {} {} instructions/round-trip", name, net);
    println!(
        "BENCH-RAW {} total={} base={} reps={}",
        name, total, base, REPS
    );
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    report("vmcall-null", || {
        vmcall(tessera::NULL);
    });
    report("port-read-com1-lsr", || {
        inb(LSR);
    });
    report("cpuid-tessera-leaf", || {
        cpuid(0x4000_0001);
    });
    // An emulated MMIO load: EPT violation, instruction fetch through the
    // guest's page tables, decode, the xAPIC page's version register.
    map_xapic_page();
    report("mmio-read-xapic", || {
        mmio::load32(XAPIC + 0x30);
    });
    println!("BENCH-DONE");
    vmcall(psci::SYSTEM_OFF);
    loop {
        // SAFETY: HLT exits to the hypervisor.
        unsafe { asm!("hlt") };
    }
}
