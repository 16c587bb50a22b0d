//! The physical GICv2 (GIC-400) as the hypervisor drives it: the
//! distributor, this core's memory-mapped CPU interface (GICC, EOImode 1:
//! GICC_EOIR drops the priority, GICC_DIR deactivates, so a forwarded
//! interrupt stays active until the guest deactivates it through its
//! virtual CPU interface), GICD_SGIR kicks, and the virtual interface
//! control frame (GICH) with the list registers of this core.
//!
//! Every interrupt stays in the group the firmware left it in: group 0 on a
//! GIC without security extensions (QEMU `virt`), group 1 on one whose
//! secure firmware configured it (the Pi's armstub). The non-secure and
//! no-security views of GICD_CTLR.Enable, GICC_CTLR.Enable and
//! GICC_CTLR.EOImode sit at the same bits, so one write works for both.

use crate::config::SYSTEM;
use core::sync::atomic::{AtomicU8, Ordering};
use super::gicd_spi;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::register_structs;

register_structs! {
    GicdRegs {
        (0x000 => ctlr: ReadWrite<u32>),
        // The per-interrupt banks up to 0x7ff: `gicd_spi`.
        (0x004 => _reserved0),
        (0x800 => itargetsr: [ReadWrite<u8>; 1024]),
        (0xc00 => _reserved1),
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => _reserved2),
        (0x1000 => @END),
    },
    GiccRegs {
        (0x0000 => ctlr: ReadWrite<u32>),
        (0x0004 => pmr: ReadWrite<u32>),
        (0x0008 => _bpr),
        (0x000c => iar: ReadOnly<u32>),
        (0x0010 => eoir: WriteOnly<u32>),
        (0x0014 => _reserved0),
        (0x1000 => dir: WriteOnly<u32>),
        (0x1004 => _reserved1),
        (0x2000 => @END),
    },
    GichRegs {
        (0x000 => hcr: ReadWrite<u32>),
        (0x004 => vtr: ReadOnly<u32>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x030 => elrsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved1),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved2),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

/// GICD_CTLR / GICC_CTLR: Enable (EnableGrp0 without security extensions,
/// EnableGrp1 in the non-secure view).
const ENABLE: u32 = 1;
/// GICC_CTLR.EOImode (EOImodeS without security extensions, EOImodeNS in
/// the non-secure view): EOIR drops priority, DIR deactivates.
const CTLR_EOIMODE: u32 = 1 << 9;
/// Private interrupts each core enables: the kick, the maintenance
/// interrupt, and the EL1 timers it forwards to its vCPU.
const PRIVATE_ENABLED: u32 =
    1 << super::gicv3::KICK_SGI | 1 << super::gicv3::MAINTENANCE_PPI | FORWARDED_PPIS;
/// The PPIs forwarded to the core's vCPU.
const FORWARDED_PPIS: u32 = crate::devices::vgic::OWNED_PPIS;
/// GICC_IAR.InterruptID; INTIDs at and above 1020 are special (spurious).
const IAR_INTID: u32 = 0x3ff;
const SPECIAL_INTID: u32 = 1020;

/// CPU-interface mask of each board CPU (index: board CPU), read from the
/// banked GICD_ITARGETSR0 at its bring-up.
static CPU_MASKS: [AtomicU8; crate::config::MAX_CPUS] =
    [const { AtomicU8::new(0) }; crate::config::MAX_CPUS];

fn gicd() -> &'static GicdRegs {
    // SAFETY: the board's distributor, mapped as device memory at EL2 for
    // the hypervisor's whole life (the low device window); its registers
    // are per-interrupt set/clear bits, banked per core, or owned by one VM.
    unsafe { &*(SYSTEM.board.gic.gicd_base as *const GicdRegs) }
}

fn gicc() -> &'static GiccRegs {
    // SAFETY: the board's CPU interface, banked per core, mapped as device
    // memory at EL2; each core only touches its own bank.
    unsafe { &*(SYSTEM.board.gic.gicr_or_gicc_base as *const GiccRegs) }
}

/// This core's virtual interface control frame.
fn gich() -> &'static GichRegs {
    // SAFETY: the board's GICH frame, banked per core (the GIC-400's "this
    // processor" view), mapped as device memory at EL2; only this core's
    // vCPU is affected by what is written there.
    unsafe { &*(SYSTEM.board.gic.gich_base as *const GichRegs) }
}

/// Reads this core's list register `n` (0 past the implemented ones).
#[inline(always)]
pub fn read_lr(n: usize) -> u64 {
    gich().lr.get(n).map_or(0, |r| r.get() as u64)
}

/// Writes this core's list register `n`.
#[inline(always)]
pub fn write_lr(n: usize, v: u64) {
    if let Some(r) = gich().lr.get(n) {
        r.set(v as u32);
    }
}

/// GICH_ELRSR1:GICH_ELRSR0, the mask of empty list registers.
#[inline(always)]
pub fn elrsr() -> u64 {
    let h = gich();
    h.elrsr[0].get() as u64 | (h.elrsr[1].get() as u64) << 32
}

/// Writes GICH_HCR.
pub fn write_hcr(v: u32) {
    gich().hcr.set(v);
}

/// GICH_VTR.
pub fn vtr() -> u32 {
    gich().vtr.get()
}

/// Zeroes the guest's CPU-interface state (GICH_VMCR) and active
/// priorities (GICH_APR); its vCPU is not running.
pub fn reset_vcpu_interface_state() {
    let h = gich();
    h.vmcr.set(0);
    h.apr.set(0);
}

/// Enables the distributor. Boot core, once.
pub fn init_distributor() {
    gicd().ctlr.set(ENABLE);
}

/// Records this core's CPU-interface mask, enables its private interrupts
/// at the hypervisor's priority and its CPU interface with EOImode 1.
pub fn init_this_cpu(cpu_index: usize) -> bool {
    let d = gicd();
    // ITARGETSR0..7 are read-only and read as this core's own interface.
    let mask = d.itargetsr[0].get();
    if mask == 0 {
        return false;
    }
    if let Some(slot) = CPU_MASKS.get(cpu_index) {
        slot.store(mask, Ordering::Relaxed);
    }
    // A forwarded timer left active by a previous run must not stay stuck.
    gicd_spi::init_banked_private(PRIVATE_ENABLED);
    let c = gicc();
    c.pmr.set(0xff);
    c.ctlr.set(ENABLE | CTLR_EOIMODE);
    true
}

/// Deactivates this core's forwarded timer PPIs (a vCPU (re)starts).
pub fn deactivate_forwarded_ppis() {
    gicd_spi::deactivate_banked_private(FORWARDED_PPIS);
}

/// Sends the kick SGI to board CPU `cpu`.
pub fn kick(cpu: usize) {
    let mask = CPU_MASKS.get(cpu).map_or(0, |m| m.load(Ordering::Relaxed));
    if mask != 0 {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISH);
        gicd()
            .sgir
            .set((mask as u32) << 16 | super::gicv3::KICK_SGI);
    }
}

/// Acknowledges the highest-priority pending interrupt: (INTID, the IAR
/// value to end it with, which names an SGI's source CPU).
#[inline(always)]
pub fn acknowledge() -> Option<(u32, u32)> {
    let iar = gicc().iar.get();
    let intid = iar & IAR_INTID;
    (intid < SPECIAL_INTID).then_some((intid, iar))
}

/// Drops the running priority of an acknowledged interrupt.
#[inline(always)]
pub fn drop_priority(iar: u32) {
    gicc().eoir.set(iar);
}

/// Deactivates an interrupt whose priority was dropped.
#[inline(always)]
pub fn deactivate(iar: u32) {
    gicc().dir.set(iar);
}

/// Targets SPI `intid` at board CPU `cpu` (byte-wide ITARGETSR: no
/// read-modify-write).
pub fn route_spi(intid: u32, cpu: usize) {
    let mask = CPU_MASKS.get(cpu).map_or(0, |m| m.load(Ordering::Relaxed));
    if gicd_spi::spi_word_bit(intid).is_some() && mask != 0 {
        gicd().itargetsr[intid as usize].set(mask);
    }
}
