//! The physical GICv3 as the hypervisor drives it: distributor, this core's
//! redistributor and CPU interface (EOImode 1: priority drop and
//! deactivation are separate, so a forwarded interrupt stays active until
//! the guest deactivates it), the kick SGI, and the per-SPI controls the
//! virtual GIC forwards passthrough interrupts with.

use aarch64_cpu::asm::barrier;
use core::sync::atomic::{AtomicU64, Ordering};
use super::gicd_spi::{self, PRIORITY};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    GICD_CTLR [
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        ARE OFFSET(4) NUMBITS(1) [],
        RWP OFFSET(31) NUMBITS(1) []
    ],
    GICR_WAKER [
        PROCESSOR_SLEEP OFFSET(1) NUMBITS(1) [],
        CHILDREN_ASLEEP OFFSET(2) NUMBITS(1) []
    ]
}

register_bitfields! {u64,
    GICR_TYPER [
        LAST OFFSET(4) NUMBITS(1) [],
        AFFINITY OFFSET(32) NUMBITS(32) []
    ]
}

register_structs! {
    GicdRegs {
        (0x0000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        // The per-interrupt banks up to 0xcff: `gicd_spi`.
        (0x0004 => _reserved0),
        (0x6000 => irouter: [ReadWrite<u64>; 1024]),
        (0x8000 => _reserved3),
        (0x10000 => @END),
    },
    GicrRdRegs {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => _iidr),
        (0x008 => typer: ReadOnly<u64, GICR_TYPER::Register>),
        (0x010 => _statusr),
        (0x014 => waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x018 => _reserved),
        (0x10000 => @END),
    },
    GicrSgiRegs {
        (0x000 => _reserved0),
        (0x080 => igroupr0: ReadWrite<u32>),
        (0x084 => _reserved1),
        (0x100 => isenabler0: ReadWrite<u32>),
        (0x104 => _reserved2),
        (0x380 => icactiver0: ReadWrite<u32>),
        (0x384 => _reserved3),
        (0x400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x420 => _reserved4),
        (0x10000 => @END),
    }
}

/// Frame stride of one GICv3 redistributor (RD_base + SGI_base).
const GICR_STRIDE: u64 = 0x20000;
/// The SGI that kicks a core out of its guest.
pub const KICK_SGI: u32 = 0;
/// The virtual interface's maintenance interrupt (PPI).
pub const MAINTENANCE_PPI: u32 = 25;
/// Private interrupts each core enables: the kick, the maintenance
/// interrupt, and the EL1 timers it forwards to its vCPU.
const PRIVATE_ENABLED: u32 = 1 << KICK_SGI | 1 << MAINTENANCE_PPI | FORWARDED_PPIS;
/// The PPIs forwarded to the core's vCPU.
const FORWARDED_PPIS: u32 = crate::devices::vgic::OWNED_PPIS;
/// INTIDs at and above this are special (1020-1023: spurious and friends).
const SPECIAL_INTID: u32 = 1020;

/// Enables the distributor with affinity routing. Boot core, once.
pub fn init_distributor(gicd_base: u64) {
    // SAFETY: the board description gives the distributor's address, which
    // the EL2 map covers as device memory.
    let gicd = unsafe { &*(gicd_base as *const GicdRegs) };
    gicd.ctlr
        .write(GICD_CTLR::ARE::SET + GICD_CTLR::ENABLE_GRP1::SET);
    while gicd.ctlr.is_set(GICD_CTLR::RWP) {}
    for (slot, &mpidr) in KICK_VALUES.iter().zip(crate::config::SYSTEM.board.cpu_mpidrs) {
        slot.store(kick_value(mpidr), Ordering::Relaxed);
    }
}

/// SGI_base frame of each core's redistributor (index: board CPU).
static SGI_FRAMES: [AtomicU64; crate::config::MAX_CPUS] =
    [const { AtomicU64::new(0) }; crate::config::MAX_CPUS];

/// Deactivates this core's forwarded timer PPIs (a vCPU (re)starts: what
/// its previous run left active must not stay stuck).
pub fn deactivate_forwarded_ppis() {
    let frame = SGI_FRAMES
        .get(super::interface::this_cpu())
        .map_or(0, |f| f.load(Ordering::Relaxed));
    if frame != 0 {
        // SAFETY: this core's SGI frame, recorded by `init_this_cpu`.
        let sgi = unsafe { &*(frame as *const GicrSgiRegs) };
        sgi.icactiver0.set(FORWARDED_PPIS);
    }
}

fn my_redistributor(gicr_base: u64, mpidr: u64) -> Option<u64> {
    let affinity = (mpidr & 0xff_ffff) | (mpidr >> 32 & 0xff) << 24;
    let mut frame = gicr_base;
    for _ in 0..crate::config::MAX_CPUS * 4 {
        // SAFETY: redistributor frames are contiguous from the board's base
        // until the one marked LAST.
        let rd = unsafe { &*(frame as *const GicrRdRegs) };
        if rd.typer.read(GICR_TYPER::AFFINITY) == affinity {
            return Some(frame);
        }
        if rd.typer.is_set(GICR_TYPER::LAST) {
            return None;
        }
        frame += GICR_STRIDE;
    }
    None
}

/// Wakes this core's redistributor, enables the kick SGI as group 1 and the
/// system-register CPU interface at EL2.
pub fn init_this_cpu(gicr_base: u64, mpidr: u64) -> bool {
    let Some(frame) = my_redistributor(gicr_base, mpidr) else {
        return false;
    };
    // SAFETY: `frame` is this core's redistributor, found by affinity above.
    let (rd, sgi) = unsafe {
        (
            &*(frame as *const GicrRdRegs),
            &*((frame + 0x10000) as *const GicrSgiRegs),
        )
    };
    if let Some(slot) = SGI_FRAMES.get(super::interface::this_cpu()) {
        slot.store(frame + 0x10000, Ordering::Relaxed);
    }
    rd.waker.modify(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
    while rd.waker.is_set(GICR_WAKER::CHILDREN_ASLEEP) {}
    sgi.igroupr0.set(u32::MAX);
    let prio4 = u32::from_ne_bytes([PRIORITY; 4]);
    for p in &sgi.ipriorityr {
        p.set(prio4);
    }
    // A forwarded timer left active by a previous run of this core's vCPU
    // must not stay stuck.
    sgi.icactiver0.set(PRIVATE_ENABLED);
    sgi.isenabler0.set(PRIVATE_ENABLED);
    // SAFETY: CPU-interface system registers of this core; SRE first so the
    // others are reachable as system registers.
    unsafe {
        core::arch::asm!(
            "mrs {t}, icc_sre_el2",
            "orr {t}, {t}, #0x1", // SRE
            "orr {t}, {t}, #0x8", // Enable: EL1 may use the system-register interface too
            "msr icc_sre_el2, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr icc_pmr_el1, {t}",
            "mov {t}, #2", // EOImode 1: EOIR drops priority, DIR deactivates
            "msr icc_ctlr_el1, {t}",
            "mov {t}, #1",
            "msr icc_igrpen1_el1, {t}",
            "isb",
            t = out(reg) _,
        );
    }
    true
}

/// The ICC_SGI1R_EL1 value that sends the kick SGI to the core with
/// affinity `mpidr`.
const fn kick_value(mpidr: u64) -> u64 {
    let aff0 = mpidr & 0xf;
    (mpidr >> 32 & 0xff) << 48
        | (mpidr >> 16 & 0xff) << 32
        | (mpidr >> 8 & 0xff) << 16
        | (KICK_SGI as u64) << 24
        | 1 << aff0
}

/// [`kick_value`] of each board CPU (0: none), filled by
/// [`init_distributor`]: a doorbell or an SGI kicks without recomputing it.
static KICK_VALUES: [AtomicU64; crate::config::MAX_CPUS] =
    [const { AtomicU64::new(0) }; crate::config::MAX_CPUS];

/// Sends the kick SGI to board CPU `cpu` (nothing for a CPU the board does
/// not have).
#[inline]
pub fn kick_cpu(cpu: usize) {
    let value = KICK_VALUES
        .get(cpu)
        .map_or(0, |v| v.load(Ordering::Relaxed));
    if value != 0 {
        send_kick(value);
    }
}

#[inline(always)]
fn send_kick(value: u64) {
    barrier::dsb(barrier::ISH);
    // SAFETY: generating an SGI has no memory effect.
    unsafe { core::arch::asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value) };
}

/// Acknowledges the highest-priority pending interrupt, returning its INTID
/// (None if spurious).
pub fn acknowledge() -> Option<u32> {
    let intid: u64;
    // SAFETY: reading IAR acknowledges an interrupt of this core; a system
    // register only (no memory), so the compiler keeps values in registers
    // across it.
    unsafe {
        core::arch::asm!("mrs {}, icc_iar1_el1", out(reg) intid, options(nomem, nostack, preserves_flags))
    };
    let intid = intid as u32 & 0xff_ffff;
    (intid < SPECIAL_INTID).then_some(intid)
}

/// Drops the running priority of an acknowledged interrupt; it stays
/// active until [`deactivate`] (or, forwarded, the guest's deactivation).
#[inline(always)]
pub fn drop_priority(intid: u32) {
    // SAFETY: EOI of an interrupt this core acknowledged (a system
    // register only, no memory).
    unsafe {
        core::arch::asm!("msr icc_eoir1_el1, {}", in(reg) intid as u64, options(nomem, nostack, preserves_flags))
    };
}

/// Deactivates an interrupt whose priority was dropped.
#[inline(always)]
pub fn deactivate(intid: u32) {
    // SAFETY: deactivation of an interrupt this core acknowledged.
    unsafe { core::arch::asm!("msr icc_dir_el1, {}", in(reg) intid as u64) };
}

/// Ends (drops priority and deactivates) an acknowledged interrupt.
pub fn end_of_interrupt(intid: u32) {
    drop_priority(intid);
    deactivate(intid);
}

/// The physical distributor (after [`init_distributor`]).
fn gicd() -> &'static GicdRegs {
    // SAFETY: the board's distributor, mapped as device memory at EL2 for
    // the hypervisor's whole life; its registers are per-SPI bits written
    // with set/clear semantics or owned by one VM.
    unsafe { &*(crate::config::SYSTEM.board.gic.gicd_base as *const GicdRegs) }
}

/// Routes SPI `intid` to the core with affinity `mpidr`.
pub fn route_spi(intid: u32, mpidr: u64) {
    if gicd_spi::spi_word_bit(intid).is_some() {
        let aff = (mpidr & 0xff_ffff) | (mpidr >> 32 & 0xff) << 32;
        gicd().irouter[intid as usize].set(aff);
    }
}
