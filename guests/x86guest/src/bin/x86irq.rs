//! Tessera's x86 interrupt-line guest: a VM given the machine's COM2
//! (ports 0x2f8-0x2ff and its line, GSI 3) programs its I/O APIC entry
//! for GSI 3 as a PC OS would, enables COM2's transmit-holding-register-
//! empty interrupt, and writes a message to COM2 one byte per interrupt
//! from its handler (edge-triggered), halting in between. Then, level-triggered: the line is
//! held (remote IRR) until the handler's EOI and comes again after it
//! while COM2 still asserts it; once COM2 stops, it stays quiet. A VM
//! without COM2 (its ports read all ones) programs the same entry, which
//! is not its own (it reads 0), and must get no interrupt at all.
#![no_std]
#![no_main]

#[path = "../rt.rs"]
#[macro_use]
mod rt;

use core::sync::atomic::{AtomicU32, Ordering};
use rt::*;
use tessera_abi::psci;

/// COM2's registers.
const COM2: u16 = 0x2f8;
const IER: u16 = COM2 + 1;
const IIR_FCR: u16 = COM2 + 2;
const LCR: u16 = COM2 + 3;
const MCR: u16 = COM2 + 4;
const LSR2: u16 = COM2 + 5;
/// IER: transmit holding register empty interrupt.
const IER_THRE: u8 = 0x02;
/// MCR: OUT2, which gates a PC UART's interrupt line.
const MCR_OUT2: u8 = 0x08;
/// LSR: transmitter empty.
const LSR_TEMT: u8 = 0x40;

/// COM2's interrupt line (ISA IRQ 3 = GSI 3).
const GSI: u32 = 3;
/// I/O APIC registers: version, GSI 3's redirection entry (low, high).
const IOAPIC_VERSION: u32 = 0x01;
const ENTRY_LOW: u32 = 0x10 + 2 * GSI;
const ENTRY_HIGH: u32 = ENTRY_LOW + 1;
/// Redirection entry bits.
const REMOTE_IRR: u32 = 1 << 14;
const LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;
/// The guest's vectors for the line: edge, then level.
const EDGE_VECTOR: u32 = 0x45;
const LEVEL_VECTOR: u32 = 0x46;
/// x2APIC MSRs.
const APIC_BASE: u32 = 0x1b;
const APIC_EXTD: u64 = 1 << 10;
const SVR: u32 = 0x80f;
const EOI: u32 = 0x80b;
/// TSC budget of each wait (Bochs: instructions).
const BUDGET: u64 = 20_000_000;

/// What the handler writes to COM2, one byte per interrupt.
const MESSAGE: &[u8] = b"tessera: COM2 written from its interrupt handler\n";

static EDGE_COUNT: AtomicU32 = AtomicU32::new(0);
static SENT: AtomicU32 = AtomicU32::new(0);
static LEVEL_COUNT: AtomicU32 = AtomicU32::new(0);
/// Level interrupts whose handler saw remote IRR set in its entry.
static LEVEL_HELD: AtomicU32 = AtomicU32::new(0);

interrupt_entry!("guest_edge_entry", "edge_handler");
interrupt_entry!("guest_level_entry", "level_handler");

extern "C" {
    fn guest_edge_entry();
    fn guest_level_entry();
}

fn ioapic_write(index: u32, value: u32) {
    mmio::store32(IOAPIC, index);
    mmio::store32(IOAPIC + 0x10, value);
}

fn ioapic_read(index: u32) -> u32 {
    mmio::store32(IOAPIC, index);
    mmio::load32(IOAPIC + 0x10)
}

fn eoi() {
    wrmsr(EOI, 0);
}

/// Edge: reading IIR ends COM2's request (the line drops), the next byte
/// raises it again once COM2 can take another; after the message, the
/// interrupt is turned off.
#[no_mangle]
extern "C" fn edge_handler() {
    EDGE_COUNT.fetch_add(1, Ordering::SeqCst);
    let _ = inb(IIR_FCR);
    let i = SENT.load(Ordering::SeqCst) as usize;
    match MESSAGE.get(i) {
        Some(&b) => {
            outb(COM2, b);
            SENT.store(i as u32 + 1, Ordering::SeqCst);
        }
        None => outb(IER, 0),
    }
    eoi();
}

/// Level: the first interrupt leaves COM2 asserting the line (so it must
/// come again after the EOI), the second turns COM2's interrupt off.
#[no_mangle]
extern "C" fn level_handler() {
    let n = LEVEL_COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if ioapic_read(ENTRY_LOW) & REMOTE_IRR != 0 {
        LEVEL_HELD.fetch_add(1, Ordering::SeqCst);
    }
    if n >= 2 {
        outb(IER, 0);
    }
    eoi();
}

/// Halts with interrupts on until `done` (checked with interrupts off, so
/// no wake-up is lost between the check and HLT).
fn halt_until(done: impl Fn() -> bool) {
    loop {
        cli();
        if done() {
            return;
        }
        sti_hlt();
    }
}

/// Waits with interrupts on until `done` or the budget is spent.
fn wait_for(done: impl Fn() -> bool, budget: u64) {
    let start = rdtsc();
    while !done() && rdtsc() - start < budget {
        sti_nop();
    }
    cli();
}

/// The VM that owns COM2 and GSI 3.
fn owner() {
    println!("x86irq: COM2 is mine");
    check(
        "ioapic-entry-starts-masked",
        ioapic_read(ENTRY_LOW) == MASKED,
    );
    // 9600 8N1 (a byte takes about 1 ms, so the vCPU halts before each
    // next interrupt), FIFO off, OUT2 on so the line reaches the I/O APIC.
    outb(LCR, 0x80);
    outb(COM2, 12);
    outb(IER, 0);
    outb(LCR, 0x03);
    outb(IIR_FCR, 0);
    outb(MCR, MCR_OUT2);

    // Edge-triggered, active high, fixed, to APIC id 0.
    ioapic_write(ENTRY_HIGH, 0);
    ioapic_write(ENTRY_LOW, EDGE_VECTOR);
    check(
        "ioapic-entry-programmed",
        ioapic_read(ENTRY_LOW) == EDGE_VECTOR && ioapic_read(ENTRY_HIGH) == 0,
    );
    // Halted between interrupts: each wakes the vCPU from HLT.
    outb(IER, IER_THRE);
    let len = MESSAGE.len() as u32;
    halt_until(|| EDGE_COUNT.load(Ordering::SeqCst) > len);
    let (n, sent) = (
        EDGE_COUNT.load(Ordering::SeqCst),
        SENT.load(Ordering::SeqCst),
    );
    println!("x86irq: {n} COM2 interrupts (edge), {sent} bytes written by the handler");
    check("irq-edge-delivered", n == len + 1 && sent == len);
    let start = rdtsc();
    while inb(LSR2) & LSR_TEMT == 0 && rdtsc() - start < BUDGET {}

    // Level-triggered: COM2 asserts the line as soon as its interrupt is
    // on. Each handler finds remote IRR set in the entry (the line is held
    // until its EOI), and after the first EOI the line, still asserted,
    // comes again.
    ioapic_write(ENTRY_LOW, LEVEL | LEVEL_VECTOR);
    outb(IER, IER_THRE);
    wait_for(|| LEVEL_COUNT.load(Ordering::SeqCst) >= 2, BUDGET);
    // Nothing more once COM2 stopped asserting it.
    wait_for(|| LEVEL_COUNT.load(Ordering::SeqCst) > 2, 2_000_000);
    let (n, held) = (
        LEVEL_COUNT.load(Ordering::SeqCst),
        LEVEL_HELD.load(Ordering::SeqCst),
    );
    println!("x86irq: {n} COM2 interrupts (level), {held} with remote IRR set in the handler");
    check("irq-level-remote-irr-until-eoi", held == n && n >= 1);
    check("irq-level-again-after-eoi", n == 2);
    check(
        "irq-level-eoi-clears-remote-irr",
        ioapic_read(ENTRY_LOW) == LEVEL | LEVEL_VECTOR,
    );
    ioapic_write(ENTRY_LOW, MASKED | LEVEL | LEVEL_VECTOR);
}

/// A VM without COM2: GSI 3 is not its line.
fn bystander() {
    println!("x86irq: no COM2 here");
    ioapic_write(ENTRY_HIGH, 0);
    ioapic_write(ENTRY_LOW, EDGE_VECTOR);
    check(
        "ioapic-foreign-entry-reads-zero",
        ioapic_read(ENTRY_LOW) == 0,
    );
    wait_for(|| false, BUDGET / 2);
    check(
        "irq-not-delivered-to-other-vm",
        EDGE_COUNT.load(Ordering::SeqCst) == 0 && LEVEL_COUNT.load(Ordering::SeqCst) == 0,
    );
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    println!("x86irq: hello");
    install_gp_handler();
    install_handler(EDGE_VECTOR as usize, guest_edge_entry);
    install_handler(LEVEL_VECTOR as usize, guest_level_entry);
    map_xapic_page();
    map_ioapic_page();
    wrmsr(APIC_BASE, rdmsr_value(APIC_BASE) | APIC_EXTD);
    wrmsr(SVR, 0x1ff);
    let version = ioapic_read(IOAPIC_VERSION);
    check(
        "ioapic-version",
        version & 0xff == 0x11 && (version >> 16 & 0xff) == 23,
    );
    // Ports the VM was not given read all ones.
    if inb(LSR2) == 0xff {
        bystander();
    } else {
        owner();
    }
    check("no-gp", gp_count() == 0);
    println!("x86irq: done");
    vmcall(psci::SYSTEM_OFF);
    loop {
        core::hint::spin_loop();
    }
}
