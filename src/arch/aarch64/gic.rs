//! The physical GIC, whichever generation the board has: every call picks
//! [`gicv3`] or [`gicv2`] from the board description's `gic.version`. The
//! board is compiled in (`SYSTEM` is an immutable static), so the choice
//! folds away at build time and the GICv3 path costs what it did before.

use super::{gicd_spi, gicv2, gicv3};
use crate::config::{GicVersion, SYSTEM};

/// Whether the board's GIC is a GICv2.
#[inline(always)]
pub fn is_v2() -> bool {
    SYSTEM.board.gic.version == GicVersion::V2
}

/// Enables the distributor. Boot core, once.
pub fn init_distributor() {
    if is_v2() {
        gicv2::init_distributor();
    } else {
        gicv3::init_distributor(SYSTEM.board.gic.gicd_base);
    }
}

/// Sets up this core's part of the GIC (redistributor or banked
/// distributor registers, CPU interface); false if it has none.
pub fn init_this_cpu(cpu_index: usize, mpidr: u64) -> bool {
    if is_v2() {
        gicv2::init_this_cpu(cpu_index)
    } else {
        gicv3::init_this_cpu(SYSTEM.board.gic.gicr_or_gicc_base, mpidr)
    }
}

/// Deactivates this core's forwarded timer PPIs.
pub fn deactivate_forwarded_ppis() {
    if is_v2() {
        gicv2::deactivate_forwarded_ppis();
    } else {
        gicv3::deactivate_forwarded_ppis();
    }
}

/// Sends the kick SGI to board CPU `cpu`.
pub fn kick(cpu: usize) {
    if is_v2() {
        gicv2::kick(cpu);
    } else {
        gicv3::kick_cpu(cpu);
    }
}

/// Acknowledges the highest-priority pending interrupt: its INTID and the
/// value that ends it (on GICv2 an SGI's carries its source CPU; on GICv3
/// both are the INTID). None if spurious.
#[inline(always)]
pub fn acknowledge() -> Option<(u32, u32)> {
    if is_v2() {
        gicv2::acknowledge()
    } else {
        gicv3::acknowledge().map(|i| (i, i))
    }
}

/// Drops the running priority of an acknowledged interrupt (`ack` from
/// [`acknowledge`]).
#[inline(always)]
pub fn drop_priority(ack: u32) {
    if is_v2() {
        gicv2::drop_priority(ack);
    } else {
        gicv3::drop_priority(ack);
    }
}

/// Ends (drops priority and deactivates) an acknowledged interrupt.
pub fn end_of_interrupt(ack: u32) {
    if is_v2() {
        gicv2::drop_priority(ack);
        gicv2::deactivate(ack);
    } else {
        gicv3::end_of_interrupt(ack);
    }
}

/// Enables or disables SPI `intid`.
pub fn set_spi_enabled(intid: u32, enabled: bool) {
    gicd_spi::set_enabled(intid, enabled);
}

/// Routes SPI `intid` to board CPU `cpu`.
pub fn route_spi(intid: u32, cpu: usize) {
    if is_v2() {
        gicv2::route_spi(intid, cpu);
    } else if let Some(&mpidr) = SYSTEM.board.cpu_mpidrs.get(cpu) {
        gicv3::route_spi(intid, mpidr);
    }
}

/// Sets SPI `intid` pending (a spare line's doorbell edge).
#[inline(always)]
pub fn set_spi_pending(intid: u32) {
    gicd_spi::set_pending(intid);
}

/// Makes SPI `intid` edge- or level-triggered.
pub fn set_spi_edge(intid: u32, edge: bool) {
    gicd_spi::set_edge(intid, edge);
}

/// Quiesces SPI `intid` (VM reset). GICv3 puts it in group 1; GICv2 keeps
/// the grouping the firmware chose.
pub fn quiesce_spi(intid: u32) {
    gicd_spi::quiesce(intid, !is_v2());
}
