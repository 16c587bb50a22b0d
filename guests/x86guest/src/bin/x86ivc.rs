//! Tessera's x86 inter-VM channel guest: two VMs share a static channel
//! (memory at [`SHM`], a doorbell page at [`BELL`]; docs/IVC.md) and play
//! ping-pong for [`ROUNDS`] rounds. Member 0 writes a numbered message
//! (sequence number and eight payload words) and rings member 1; member 1
//! halts until the doorbell's vector arrives in its local APIC, checks
//! every word, acknowledges PENDING, answers with sequence + 1000 and rings
//! back. Each side counts its interrupts: one per round, no more.
#![no_std]
#![no_main]

#[path = "../rt.rs"]
#[macro_use]
mod rt;

use core::sync::atomic::{AtomicU32, Ordering};
use rt::*;
use tessera_abi::{doorbell as reg, psci};

/// Guest-physical base of the shared memory and of this VM's doorbell page
/// (`tests/configs/x86-ivc.toml`), both in the identity-mapped first GiB.
const SHM: u64 = 0x0200_0000;
const BELL: u64 = 0x0210_0000;
/// The channel's size.
const SIZE: u32 = 0x1_0000;
/// The doorbell's vector (the config's `irq`).
const VECTOR: usize = 0x4a;
const ROUNDS: u32 = 1000;
/// Shared-memory words: the message's sequence number, its payload, the
/// answer.
const SEQ: usize = 0;
const PAYLOAD: usize = 1;
const PAYLOAD_WORDS: usize = 8;
const REPLY: usize = 16;
/// x2APIC MSRs.
const APIC_BASE: u32 = 0x1b;
const APIC_EXTD: u64 = 1 << 10;
const SVR: u32 = 0x80f;
const EOI: u32 = 0x80b;

static IRQS: AtomicU32 = AtomicU32::new(0);

interrupt_entry!("guest_doorbell_entry", "doorbell_handler");

extern "C" {
    fn guest_doorbell_entry();
}

#[no_mangle]
extern "C" fn doorbell_handler() {
    IRQS.fetch_add(1, Ordering::SeqCst);
    wrmsr(EOI, 0);
}

fn shm(word: usize) -> *mut u32 {
    (SHM as *mut u32).wrapping_add(word)
}

fn rd(word: usize) -> u32 {
    // SAFETY: the channel's memory, mapped read-write in this VM.
    unsafe { core::ptr::read_volatile(shm(word)) }
}

fn wr(word: usize, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { core::ptr::write_volatile(shm(word), v) }
}

fn bell(offset: u64) -> u32 {
    mmio::load32(BELL + offset)
}

/// The payload word `k` of message `n`.
fn payload(n: u32, k: usize) -> u32 {
    n.wrapping_mul(0x9e37_79b9) ^ (k as u32).wrapping_mul(0x85eb_ca6b)
}

/// Halts with interrupts on until `n` doorbells came (checked with
/// interrupts off, so no wake-up is lost between the check and HLT).
fn wait_rings(n: u32) {
    loop {
        cli();
        if IRQS.load(Ordering::SeqCst) >= n {
            return;
        }
        sti_hlt();
    }
}

/// Acknowledges what is pending; true if exactly `from` rang.
fn acknowledge(from: u32) -> bool {
    let pending = bell(reg::PENDING);
    mmio::store32(BELL + reg::ACK, pending);
    pending == 1 << from && bell(reg::PENDING) == 0
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    println!("x86ivc: hello");
    install_gp_handler();
    install_handler(VECTOR, guest_doorbell_entry);
    wrmsr(APIC_BASE, rdmsr_value(APIC_BASE) | APIC_EXTD);
    wrmsr(SVR, 0x1ff);
    let me = bell(reg::SELF);
    let peer = 1 - me.min(1);
    check(
        "doorbell-identity",
        bell(reg::CHANNEL_ID) == 0
            && bell(reg::MEMBERS) == 2
            && me <= 1
            && bell(reg::SIZE_LO) == SIZE
            && bell(reg::SIZE_HI) == 0,
    );
    let (mut ok, mut acks) = (0, 0);
    for n in 1..=ROUNDS {
        if me == 0 {
            for k in 0..PAYLOAD_WORDS {
                wr(PAYLOAD + k, payload(n, k));
            }
            wr(SEQ, n);
            mmio::store32(BELL + reg::RING, peer);
            wait_rings(n);
            acks += u32::from(acknowledge(peer));
            ok += u32::from(rd(REPLY) == n + 1000);
        } else {
            wait_rings(n);
            acks += u32::from(acknowledge(peer));
            let whole =
                rd(SEQ) == n && (0..PAYLOAD_WORDS).all(|k| rd(PAYLOAD + k) == payload(n, k));
            ok += u32::from(whole);
            wr(REPLY, n + 1000);
            mmio::store32(BELL + reg::RING, peer);
        }
    }
    let irqs = IRQS.load(Ordering::SeqCst);
    println!("x86ivc: member {me}: {ok}/{ROUNDS} messages right, {acks} acknowledged, {irqs} doorbell interrupts");
    check("ping-pong", ok == ROUNDS && acks == ROUNDS);
    check("one-interrupt-per-ring", irqs == ROUNDS);
    // A ring of a member that does not exist is refused (an abort the
    // hypervisor's policy turns into #GP here) and raises nothing.
    let gp = gp_count();
    mmio::store32(BELL + reg::RING, 7);
    check(
        "bad-ring-refused",
        gp_count() == gp + 1 && bell(reg::PENDING) == 0,
    );
    check("no-other-gp", gp_count() == gp + 1);
    println!("x86ivc: done");
    vmcall(psci::SYSTEM_OFF);
    loop {
        core::hint::spin_loop();
    }
}
