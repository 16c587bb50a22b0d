//! The board's physical I/O APIC (`[ioapic]` in the board file): the
//! hypervisor owns it. At boot every input is masked; a VM's input (GSI)
//! is programmed as its guest programs its virtual I/O APIC
//! ([`super::vioapic`]): fixed delivery, physical destination = the
//! physical core of the vCPU the guest routes it to, the guest's trigger
//! mode and polarity, and host vector [`vector_of`]`(gsi)`. The exit
//! handler maps that vector back to the GSI and injects the guest's
//! vector. A level-triggered input is masked from its arrival to the
//! guest's EOI, so a line the guest has not serviced yet cannot storm.

use crate::config::SYSTEM;
use spin::Mutex;

/// Host vector of GSI 0; GSI `g` arrives at `GSI_VECTOR_BASE + g`, below
/// the kick (0xf2) and the spurious vector (0xff). The config bounds the
/// pins so every GSI has one (`MAX_GSIS` in tessera-config).
pub const GSI_VECTOR_BASE: u8 = 0x30;

/// Register indexes: version, first redirection entry.
const REG_VERSION: u32 = 0x01;
const REG_REDIR: u32 = 0x10;
/// Redirection entry bits: polarity low, level trigger, masked.
const ACTIVE_LOW: u32 = 1 << 13;
const LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;

/// IOREGSEL/IOWIN are one pair of registers: one core at a time.
static LOCK: Mutex<()> = Mutex::new(());

/// The host vector GSI `gsi` arrives at.
pub fn vector_of(gsi: u32) -> u8 {
    GSI_VECTOR_BASE.wrapping_add(gsi as u8)
}

/// The GSI behind host vector `vector`, if it is one of the board's.
pub fn gsi_of(vector: u8) -> Option<u32> {
    let gsi = u32::from(vector.checked_sub(GSI_VECTOR_BASE)?);
    (gsi < pins()).then_some(gsi)
}

/// Inputs the hypervisor drives: the board's, 0 without an I/O APIC.
fn pins() -> u32 {
    SYSTEM.board.ioapic.map_or(0, |io| io.pins)
}

/// Reads register `index` (the lock held).
fn read(base: u64, index: u32) -> u32 {
    // SAFETY: the board's I/O APIC registers (identity-mapped below 4 GiB
    // by the boot page tables, uncached there as firmware's MTRRs say);
    // IOREGSEL then IOWIN, under LOCK.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, index);
        core::ptr::read_volatile((base + 0x10) as *const u32)
    }
}

/// Writes register `index` (the lock held).
fn write(base: u64, index: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, index);
        core::ptr::write_volatile((base + 0x10) as *mut u32, value);
    }
}

/// Masks every input of the board's I/O APIC (boot CPU, once): nothing
/// reaches a core until a guest unmasks one of its own lines. Returns the
/// number of inputs the hardware reports, for the boot log.
pub fn init() -> Option<u32> {
    let io = SYSTEM.board.ioapic?;
    let _g = LOCK.lock();
    let hw = (read(io.base, REG_VERSION) >> 16 & 0xff) + 1;
    for gsi in 0..io.pins.min(hw) {
        write(io.base, REG_REDIR + 2 * gsi + 1, 0);
        write(io.base, REG_REDIR + 2 * gsi, MASKED | u32::from(vector_of(gsi)));
    }
    Some(hw)
}

/// How a VM's input is programmed (mirrors its guest's entry).
#[derive(Debug, Clone, Copy)]
pub struct PhysRoute {
    /// Local APIC id of the physical core it goes to.
    pub apic_id: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
    /// Masked.
    pub masked: bool,
}

/// Programs input `gsi`: destination first, then the low word with the
/// mask (so the entry never fires half-written).
pub fn program(gsi: u32, r: PhysRoute) {
    let Some(io) = SYSTEM.board.ioapic.filter(|io| gsi < io.pins) else {
        return;
    };
    let mut low = u32::from(vector_of(gsi));
    if r.level {
        low |= LEVEL;
    }
    if r.active_low {
        low |= ACTIVE_LOW;
    }
    let _g = LOCK.lock();
    // Masked while the destination changes.
    write(io.base, REG_REDIR + 2 * gsi, low | MASKED);
    write(io.base, REG_REDIR + 2 * gsi + 1, (r.apic_id & 0xff) << 24);
    if !r.masked {
        write(io.base, REG_REDIR + 2 * gsi, low);
    }
}

/// Masks or unmasks input `gsi`, keeping the rest of its entry.
pub fn set_masked(gsi: u32, masked: bool) {
    let Some(io) = SYSTEM.board.ioapic.filter(|io| gsi < io.pins) else {
        return;
    };
    let _g = LOCK.lock();
    let low = read(io.base, REG_REDIR + 2 * gsi);
    let new = if masked { low | MASKED } else { low & !MASKED };
    if new != low {
        write(io.base, REG_REDIR + 2 * gsi, new);
    }
}

/// Whether this core's local APIC holds an interrupt of one of the
/// board's GSIs (a core waiting in the hypervisor runs with interrupts
/// off: the line is taken at its next VM entry).
pub fn gsi_pending() -> bool {
    let pins = pins();
    if pins == 0 {
        return false;
    }
    let first = u32::from(GSI_VECTOR_BASE);
    let last = first + pins - 1;
    (first / 32..=last / 32).any(|w| {
        let lo = (w * 32).max(first) - w * 32;
        let hi = ((w * 32 + 31).min(last)) - w * 32;
        let mask = (u32::MAX >> (31 - hi)) & (u32::MAX << lo);
        super::smp::irr_word(w) & mask != 0
    })
}
