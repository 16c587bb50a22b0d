//! Starting the application processors: INIT-SIPI-SIPI through the boot
//! CPU's local APIC (xAPIC, memory-mapped), one AP at a time, each handed
//! its CPU index and stack through two words the trampoline reads.

use super::boot;
use crate::config::SYSTEM;
use core::sync::atomic::{AtomicU64, Ordering};
use x86::msr::{rdmsr, IA32_APIC_BASE};

/// Stack top for the AP being started (read by `ap_long` in entry.S).
#[no_mangle]
static TESSERA_AP_STACK: AtomicU64 = AtomicU64::new(0);
/// CPU index of the AP being started (its first argument).
#[no_mangle]
static TESSERA_AP_CPU: AtomicU64 = AtomicU64::new(0);
/// The index of the last AP that reached Rust.
static AP_ARRIVED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Interrupt command register, low and high words (xAPIC offsets).
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: INIT, level assert.
const ICR_INIT: u32 = 0b101 << 8 | 1 << 14;
/// ICR: start-up IPI.
const ICR_SIPI: u32 = 0b110 << 8 | 1 << 14;

fn apic_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
    unsafe { rdmsr(IA32_APIC_BASE) & 0xf_ffff_f000 }
}

fn spin(iterations: u32) {
    for _ in 0..iterations {
        core::hint::spin_loop();
    }
}

fn send_ipi(apic_id: u32, command: u32) {
    let base = apic_base();
    // SAFETY: the local APIC's registers, identity-mapped by the boot page
    // tables (first 4 GiB); ICR writes only send the IPI.
    unsafe {
        core::ptr::write_volatile((base + ICR_HIGH) as *mut u32, apic_id << 24);
        core::ptr::write_volatile((base + ICR_LOW) as *mut u32, command);
        while core::ptr::read_volatile((base + ICR_LOW) as *const u32) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Vector of the IPI that kicks a core out of its guest.
const KICK_VECTOR: u32 = 0xf2;
/// ICR: fixed delivery, level assert.
const ICR_FIXED: u32 = 1 << 14;
/// Spurious-interrupt vector register, and its APIC software-enable bit.
const SVR: u64 = 0xf0;
const SVR_ENABLE: u32 = 1 << 8;
/// End-of-interrupt register.
const EOI: u64 = 0xb0;

/// Software-enables this core's local APIC (spurious vector 0xff) so it
/// accepts kicks. The hypervisor runs with interrupts off: a kick that
/// arrives in VMX root stays pending and makes the next VM entry exit at
/// once, which is what a kick is for.
pub fn enable_local_apic() {
    let svr = apic_base() + SVR;
    // SAFETY: this core's local APIC register (identity-mapped); enabling
    // it only lets it accept interrupts, which stay masked by RFLAGS.IF.
    unsafe {
        let v = core::ptr::read_volatile(svr as *const u32);
        core::ptr::write_volatile(svr as *mut u32, v | SVR_ENABLE | 0xff);
    }
}

/// Kicks CPU `cpu`: an IPI that makes it leave its guest (an
/// external-interrupt exit) and look at its vCPU's state.
pub fn kick(cpu: usize) {
    if let Some(&apic_id) = SYSTEM.board.cpu_mpidrs.get(cpu) {
        send_ipi(apic_id as u32, ICR_FIXED | KICK_VECTOR);
    }
}

/// Ends the interrupt this core acknowledged on a VM exit.
pub fn eoi() {
    // SAFETY: this core's local APIC EOI register; writing 0 retires the
    // in-service interrupt.
    unsafe { core::ptr::write_volatile((apic_base() + EOI) as *mut u32, 0) };
}

/// Interrupt request register word `i` (vectors `32 * i..32 * i + 32`) of
/// this core's local APIC: interrupts it holds until the core takes them.
pub fn irr_word(i: u32) -> u32 {
    // This core's local APIC IRR: offset 0x200 + 0x10 * i, i < 8.
    let irr = apic_base() + 0x200 + 0x10 * u64::from(i & 7);
    // SAFETY: a register of this core's local APIC (identity-mapped);
    // reading it has no side effect.
    unsafe { core::ptr::read_volatile(irr as *const u32) }
}

/// Called first by every AP in Rust: tells the boot CPU it has arrived.
pub fn arrived(cpu: usize) {
    AP_ARRIVED.store(cpu as u64, Ordering::Release);
}

/// Starts every CPU of the board but the boot CPU `me`; returns how many
/// reached Rust.
pub fn start_aps(me: usize) -> usize {
    let tramp = boot::ap_trampoline();
    // SAFETY: low memory below 1 MiB is conventional RAM no one uses after
    // boot (the multiboot2 information was read already); the trampoline is
    // a few hundred bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(tramp.as_ptr(), boot::AP_ENTRY as *mut u8, tramp.len())
    };
    let mut started = 0;
    for (cpu, &apic_id) in SYSTEM.board.cpu_mpidrs.iter().enumerate() {
        if cpu == me {
            continue;
        }
        TESSERA_AP_STACK.store(
            boot::stack_top(cpu) - super::vmexit::REGS_SIZE,
            Ordering::Release,
        );
        TESSERA_AP_CPU.store(cpu as u64, Ordering::Release);
        let apic_id = apic_id as u32;
        send_ipi(apic_id, ICR_INIT);
        spin(100_000);
        for _ in 0..2 {
            send_ipi(apic_id, ICR_SIPI | (boot::AP_ENTRY >> 12) as u32);
            spin(10_000);
        }
        let mut waited = 0u32;
        while AP_ARRIVED.load(Ordering::Acquire) != cpu as u64 && waited < 50_000_000 {
            core::hint::spin_loop();
            waited += 1;
        }
        if AP_ARRIVED.load(Ordering::Acquire) == cpu as u64 {
            started += 1;
        } else {
            log::warn!("CPU {} (APIC id {}) did not start", cpu, apic_id);
        }
    }
    started
}
