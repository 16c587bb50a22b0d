//! The physical distributor's per-SPI banks, which GICv2 and GICv3 lay out
//! identically (group, enable, pending, active, priority, configuration
//! from 0x080 to 0xcff): one implementation of the SPI operations a VM's
//! passthrough interrupts need, whichever generation the board has. Only
//! routing differs (GICv2 ITARGETSR, GICv3 IROUTER) and stays in
//! [`super::gicv2`] / [`super::gicv3`]. On a GICv2 the first word of each
//! bank is banked per core (its SGIs and PPIs): the `*_banked_private`
//! calls act on the calling core's.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    /// GICD_TYPER (the same field in both generations).
    GICD_TYPER [
        /// Implemented INTIDs: 32 * (ITLinesNumber + 1), at most 1020.
        IT_LINES_NUMBER OFFSET(0) NUMBITS(5) []
    ]
];

register_structs! {
    SpiBanks {
        (0x000 => _ctlr),
        (0x004 => typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x008 => _iidr_and_reserved),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => _isactiver),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        (0x400 => ipriorityr: [ReadWrite<u8>; 1024]),
        (0x800 => _targets),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => @END),
    }
}

/// Priority of every physical interrupt the hypervisor takes (both
/// generations; the guest's own priority lives in the list register).
pub const PRIORITY: u8 = 0xa0;

/// Serialises read-modify-write of GICD_IGROUPR and GICD_ICFGR words, which
/// hold SPIs that may belong to different VMs.
static RMW_LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn banks() -> &'static SpiBanks {
    // SAFETY: the board's distributor, mapped as device memory at EL2 for
    // the hypervisor's whole life; these registers are per-SPI bits written
    // with set/clear semantics, bytes owned by one VM, or words changed
    // under RMW_LOCK.
    unsafe { &*(crate::config::SYSTEM.board.gic.gicd_base as *const SpiBanks) }
}

/// The word index and bit of SPI `intid` in the one-bit-per-interrupt
/// banks; None for SGIs, PPIs and special INTIDs.
pub fn spi_word_bit(intid: u32) -> Option<(usize, u32)> {
    (32..1020)
        .contains(&intid)
        .then_some(((intid / 32) as usize, 1 << (intid % 32)))
}

/// One past the largest INTID the distributor implements (GICD_TYPER).
pub fn implemented_intids() -> u32 {
    (32 * (banks().typer.read(GICD_TYPER::IT_LINES_NUMBER) + 1)).min(1020)
}

/// Enables or disables SPI `intid`.
pub fn set_enabled(intid: u32, enabled: bool) {
    if let Some((w, bit)) = spi_word_bit(intid) {
        let regs = if enabled {
            &banks().isenabler
        } else {
            &banks().icenabler
        };
        regs[w].set(bit);
    }
}

/// Sets SPI `intid` pending (GICD_ISPENDR: write-one-to-set, no
/// read-modify-write).
#[inline(always)]
pub fn set_pending(intid: u32) {
    if let Some((w, bit)) = spi_word_bit(intid) {
        banks().ispendr[w].set(bit);
    }
}

/// Makes SPI `intid` edge- or level-triggered.
pub fn set_edge(intid: u32, edge: bool) {
    if spi_word_bit(intid).is_none() {
        return;
    }
    let d = banks();
    let (w, bit) = ((intid / 16) as usize, 2 << (2 * (intid % 16)));
    let _guard = RMW_LOCK.lock();
    let old = d.icfgr[w].get();
    d.icfgr[w].set(if edge { old | bit } else { old & !bit });
}

/// Puts SPI `intid` in the state a VM finds it in at (re)start: at
/// [`PRIORITY`], disabled, neither pending nor active, and in group 1
/// when `group1` (GICv3, where the hypervisor owns the grouping; on GICv2
/// the firmware's grouping is kept).
pub fn quiesce(intid: u32, group1: bool) {
    if let Some((w, bit)) = spi_word_bit(intid) {
        let d = banks();
        d.icenabler[w].set(bit);
        d.icpendr[w].set(bit);
        d.icactiver[w].set(bit);
        d.ipriorityr[intid as usize].set(PRIORITY);
        if group1 {
            let _guard = RMW_LOCK.lock();
            d.igroupr[w].set(d.igroupr[w].get() | bit);
        }
    }
}

/// GICv2: this core's banked SGIs and PPIs at [`PRIORITY`], those in
/// `mask` deactivated and enabled.
pub fn init_banked_private(mask: u32) {
    let d = banks();
    for p in &d.ipriorityr[..32] {
        p.set(PRIORITY);
    }
    d.icactiver[0].set(mask);
    d.isenabler[0].set(mask);
}

/// GICv2: deactivates this core's banked private interrupts in `mask`.
pub fn deactivate_banked_private(mask: u32) {
    banks().icactiver[0].set(mask);
}
