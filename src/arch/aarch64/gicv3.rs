//! The little of the physical GICv3 the hypervisor itself needs now: enable
//! the distributor and this core's redistributor and CPU interface, send
//! and receive the SGI used to kick a core out of its guest (to stop or
//! reset a VM). The virtual GIC for guests builds on this.

use aarch64_cpu::asm::barrier;
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
        (0x000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x004 => _reserved),
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
        (0x400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x420 => _reserved3),
        (0x10000 => @END),
    }
}

/// Frame stride of one GICv3 redistributor (RD_base + SGI_base).
const GICR_STRIDE: u64 = 0x20000;
/// The SGI that kicks a core out of its guest.
pub const KICK_SGI: u32 = 0;
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
    rd.waker.modify(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
    while rd.waker.is_set(GICR_WAKER::CHILDREN_ASLEEP) {}
    sgi.igroupr0.set(u32::MAX);
    sgi.ipriorityr[0].set(0xa0a0_a0a0);
    sgi.isenabler0.set(1 << KICK_SGI);
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
            "mov {t}, #1",
            "msr icc_igrpen1_el1, {t}",
            "isb",
            t = out(reg) _,
        );
    }
    true
}

/// Sends the kick SGI to the core with affinity `mpidr`.
pub fn kick(mpidr: u64) {
    let aff0 = mpidr & 0xf;
    let value = (mpidr >> 32 & 0xff) << 48
        | (mpidr >> 16 & 0xff) << 32
        | (mpidr >> 8 & 0xff) << 16
        | (KICK_SGI as u64) << 24
        | 1 << aff0;
    barrier::dsb(barrier::ISH);
    // SAFETY: generating an SGI has no memory effect.
    unsafe { core::arch::asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value) };
}

/// Acknowledges the highest-priority pending interrupt, returning its INTID
/// (None if spurious).
pub fn acknowledge() -> Option<u32> {
    let intid: u64;
    // SAFETY: reading IAR acknowledges an interrupt of this core.
    unsafe { core::arch::asm!("mrs {}, icc_iar1_el1", out(reg) intid) };
    let intid = intid as u32 & 0xff_ffff;
    (intid < SPECIAL_INTID).then_some(intid)
}

/// Ends (drops priority and deactivates) an acknowledged interrupt.
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: EOI of an interrupt this core acknowledged.
    unsafe { core::arch::asm!("msr icc_eoir1_el1, {}", "isb", in(reg) intid as u64) };
}
